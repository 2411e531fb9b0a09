-- 0007_unmask: how many customers each staff member saw unmasked, per clock hour, for the
-- per-staff limit ([access] unmask_limit_per_hour); alerted says the limit's alert was raised
-- in that hour. Rows older than the hour before are dropped as the staff member reads on.
CREATE TABLE unmask_usage (
    staff_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    count INTEGER NOT NULL,
    alerted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (staff_id, hour)
);
