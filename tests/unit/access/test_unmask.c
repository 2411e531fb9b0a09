/*
 * test_unmask.c - the per-staff count of unmasked reads: up to the limit and not past it, the
 * previous hour weighted by what is left of it, one alert per clock hour and staff member,
 * staff members counted apart, old hours dropped, and a take that does not fit counts
 * nothing.
 */
#include "cu_test.h"

#include "access/unmask.h"
#include "store/store.h"

struct fixture {
    char dir[256];
    struct cu_store *st;
    struct cu_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[300], err[CU_STORE_ERR_BYTES];
    assert_non_null(f);
    cu_test_tmpdir(f->dir, sizeof(f->dir));
    snprintf(path, sizeof(path), "%s/t.db", f->dir);
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = path,
                              .busy_timeout_ms = 1000,
                              .synchronous_full = true,
                              .create = true};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_db(f->st, &f->db), CU_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_store_close(f->st);
    cu_test_rmrf(f->dir);
    free(f);
    return 0;
}

#define H CU_UNMASK_HOUR_MS
#define T0 (490000 * H) /* the start of a clock hour */

static struct cu_unmask_take take(struct fixture *f, const char *who, int64_t at, unsigned n,
                                  unsigned limit)
{
    struct cu_unmask_take t;
    assert_int_equal(cu_db_begin(f->db, CU_TXN_WRITE), CU_OK);
    assert_int_equal(cu_unmask_take(f->db, who, at, n, limit, &t), CU_OK);
    assert_int_equal(cu_db_commit(f->db), CU_OK);
    return t;
}

static int64_t rows(struct fixture *f, const char *who)
{
    struct cu_stmt *st = NULL;
    bool row = false;
    const struct cu_val p[] = {CU_VT(who)};
    int64_t n;
    assert_int_equal(
        cu_db_query(f->db, "SELECT count(*) FROM unmask_usage WHERE staff_id = $1", p, 1, &st),
        CU_OK);
    assert_int_equal(cu_stmt_next(st, &row), CU_OK);
    assert_true(row);
    n = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return n;
}

static void test_up_to_the_limit(void **state)
{
    struct fixture *f = *state;
    struct cu_unmask_take t;

    t = take(f, "stf_a", T0 + 1000, 3, 5);
    assert_true(t.granted);
    assert_int_equal(t.used, 0);
    t = take(f, "stf_a", T0 + 2000, 2, 5);
    assert_true(t.granted);
    assert_int_equal(t.used, 3);
    /* a take that does not fit whole counts nothing, and raises the alert once */
    t = take(f, "stf_a", T0 + 3000, 1, 5);
    assert_false(t.granted);
    assert_true(t.alert);
    assert_int_equal(t.used, 5);
    t = take(f, "stf_a", T0 + 4000, 1, 5);
    assert_false(t.granted);
    assert_false(t.alert);
    assert_int_equal(t.used, 5);
    /* another staff member is counted apart */
    t = take(f, "stf_b", T0 + 4000, 5, 5);
    assert_true(t.granted);
    /* a batch larger than what is left is refused whole */
    t = take(f, "stf_c", T0 + 4000, 4, 5);
    assert_true(t.granted);
    t = take(f, "stf_c", T0 + 4001, 2, 5);
    assert_false(t.granted);
    t = take(f, "stf_c", T0 + 4002, 1, 5);
    assert_true(t.granted);
}

static void test_the_hour_slides(void **state)
{
    struct fixture *f = *state;
    struct cu_unmask_take t;

    assert_true(take(f, "stf_a", T0 + H - 1, 100, 100).granted);
    /* the next clock hour begins: all of the last hour still counts */
    t = take(f, "stf_a", T0 + H, 1, 100);
    assert_false(t.granted);
    assert_true(t.alert); /* a new clock hour: a new alert */
    assert_int_equal(t.used, 100);
    /* a quarter into it, three quarters of the last hour count (75) */
    t = take(f, "stf_a", T0 + H + H / 4, 25, 100);
    assert_true(t.granted);
    assert_int_equal(t.used, 75);
    t = take(f, "stf_a", T0 + H + H / 4, 1, 100);
    assert_false(t.granted);
    assert_false(t.alert);
    /* a minute before the hour's end, the last hour's share rounds up to 2 */
    t = take(f, "stf_a", T0 + 2 * H - 60000, 1, 100);
    assert_int_equal(t.used, 25 + 2);
    /* half into the next hour, half of the 26 of the last one count */
    t = take(f, "stf_a", T0 + 2 * H + H / 2, 1, 100);
    assert_int_equal(t.used, 13);
    /* an hour on, nothing of that hour is left, and the rows before it are dropped */
    t = take(f, "stf_a", T0 + 4 * H, 1, 100);
    assert_true(t.granted);
    assert_int_equal(t.used, 0);
    assert_int_equal(rows(f, "stf_a"), 1);
}

static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct cu_unmask_take t;
    assert_int_equal(cu_unmask_take(f->db, "stf_a", T0, 0, 5, &t), CU_E_INVALID);
    assert_int_equal(cu_unmask_take(f->db, "stf_a", T0, 1, 0, &t), CU_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_up_to_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_hour_slides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
