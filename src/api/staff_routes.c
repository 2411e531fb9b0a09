/*
 * staff_routes.c - staff administration (add, list, read, change scopes or status, set a
 * first password, clear a lockout) and the credentials of customers as the company's services
 * and staff manage them (set a password, see credentials and lockout, clear a lockout, end
 * every session).
 *
 * Least privilege as for API keys: a principal can only give a staff member scopes it holds
 * itself, so staff.write is not a way to every other scope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/gate.h"
#include "api/handlers.h"
#include "monitor/monitor.h"
#include "api/server.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"

static bool valid_id(const char *id, const char *prefix)
{
    if (strlen(id) != 20 || strncmp(id, prefix, 4) != 0)
        return false;
    for (const char *p = id + 4; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

static bool valid_staff_id(const char *id)
{
    return valid_id(id, "stf_");
}

/* A staff or credential change, from the handler through its unit of work to its answer. */
struct staff_job {
    struct cu_req *req;
    struct cu_resp *resp;
    json_t *body;
    void *memo; /* monitoring's decision about a customer's new password, across runs */
    const char *email, *name, *status;
    uint64_t scopes;
    struct cu_staff_access access; /* roles and attributes to store */
    unsigned access_given;         /* which of them the body names (GIVEN_*) */
    uint64_t role_perms;           /* what access.roles give under the policy in force */
    struct cu_staff_info s;
    char why[CU_IDENTITY_WHY_BYTES];
    struct cu_identity_password pw;
    bool refused;      /* the unit found the principal may no longer act on the staff member */
    char missing[512]; /* the scopes it lacks */
    struct cu_gate_result gate; /* customers' credentials: the unit's decision on the customer */
};

static void staff_job_clear(void *p)
{
    struct staff_job *j = p;
    cu_monitor_memo_free(j->memo);
    json_decref(j->body);
    cu_identity_password_clear(&j->pw);
    cu_crypto_wipe(&j->s, sizeof(j->s));
}

static struct staff_job *staff_job_new(struct cu_req *req, struct cu_resp *resp)
{
    struct staff_job *j = cu_req_alloc(req, sizeof(*j), staff_job_clear);
    if (j == NULL) {
        cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
        return NULL;
    }
    j->req = req;
    j->resp = resp;
    return j;
}

/* apply_fail(j, rc, what): a change's own failure, reported (busy is left to the committer). */
static enum cu_err apply_fail(struct staff_job *j, enum cu_err rc, const char *what)
{
    return cu_resp_change_failed(j->resp, rc,
                                 rc == CU_E_NOT_FOUND ? "no active account has this id" : what);
}

/* still_may(j, w, db, id, scopes): least privilege again inside the unit of work, on the staff
 * member as stored now (the handler checked a read that an administrator may have changed
 * since): the principal must hold their scopes and scopes. CU_OK with j->refused false when it
 * does; CU_OK with j->refused true when it does not, the refusal recorded in w (the unit then
 * commits only that); the error of the read otherwise (busy is run again, a staff member gone
 * is 404). */
/* now_principal(j, db, out): the request's principal with its scopes as stored now (a staff
 * member's may have been cut since the request was authenticated; a key revoked or expired
 * meanwhile holds none). */
static enum cu_err now_principal(struct staff_job *j, struct cu_db *db, struct cu_principal *out)
{
    const struct cu_principal *p = &j->req->principal;
    struct cu_apikey_info key;
    bool active = false, totp = false;
    enum cu_err rc = CU_OK;

    *out = *p;
    if (p->kind == CU_PRINCIPAL_STAFF) {
        rc = cu_identity_subject_state(j->req->app->identity, db, CU_SUBJECT_STAFF, p->id,
                                       &out->scopes, &active, &totp);
        if (rc == CU_OK)
            rc = cu_identity_staff_access(db, p->id, &out->access);
        if (rc == CU_OK && !active) {
            out->scopes = 0;
            memset(&out->access, 0, sizeof(out->access));
        }
    } else if (p->kind == CU_PRINCIPAL_APIKEY) {
        rc = cu_apikey_get(db, p->id, &key);
        out->scopes = rc == CU_OK && key.revoked_at == 0 &&
                              (key.expires_at == 0 || key.expires_at > cu_clock_now_ms())
                          ? key.scopes
                          : 0;
    } else {
        out->scopes = 0;
    }
    return rc == CU_E_NOT_FOUND ? CU_OK : rc;
}

/* may_grant_now(j, now, scopes): the grant rule for the principal as stored now, as the
 * request's policy decides it. */
static enum cu_err may_grant_now(struct staff_job *j, const struct cu_principal *now,
                                 uint64_t scopes)
{
    struct cu_access_ctx ctx;
    cu_req_access_ctx(j->req, &ctx);
    return cu_access_may_grant_by(now, &ctx, scopes, j->missing, sizeof(j->missing));
}

static enum cu_err still_may(struct staff_job *j, struct cu_work *w, struct cu_db *db,
                             const char *id, uint64_t scopes)
{
    struct cu_staff_info cur;
    struct cu_principal now;
    enum cu_err rc;

    memset(&cur, 0, sizeof(cur));
    j->refused = false;
    rc = now_principal(j, db, &now);
    if (rc == CU_OK)
        rc = cu_identity_staff_get(j->req->app->identity, db, id, &cur);
    if (rc == CU_OK &&
        may_grant_now(j, &now,
                      scopes | cur.scopes |
                          cu_policy_roles_permissions(j->req->policy, cur.access.roles)) != CU_OK) {
        j->refused = true;
        rc = cu_work_audit(
            w, "access.denied", id, "denied",
            json_pack("{s:s, s:s}", "reason", "scope escalation", "missing", j->missing));
    }
    cu_crypto_wipe(&cur, sizeof(cur));
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(j->resp, rc, "no staff member has this id");
    return rc;
}

/* refused_answer(resp, j): the 403 of a unit that found the principal may not act. */
static enum cu_err refused_answer(struct cu_resp *resp, const struct staff_job *j)
{
    if (j->gate.refused)
        return cu_gate_refused_answer(resp, &j->gate);
    return cu_resp_fail(resp, CU_E_FORBIDDEN,
                        "a principal can only grant, or act on, scopes it holds; this one lacks: "
                        "%s",
                        j->missing);
}

static json_t *staff_json(const struct cu_staff_info *s)
{
    char created[CU_RFC3339_BYTES], updated[CU_RFC3339_BYTES], trained[CU_RFC3339_BYTES];
    json_t *roles = cu_resp_roles(s->access.roles);

    cu_clock_format(s->created_at, created);
    cu_clock_format(s->updated_at, updated);
    if (s->access.training_valid_until)
        cu_clock_format(s->access.training_valid_until, trained);
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:s?, s:s?, s:s?, s:s, s:b, s:b, s:s, s:s}", "id", s->id,
        "email", s->email, "name", s->name, "scopes", cu_resp_scopes(s->scopes), "roles", roles,
        "department", s->access.department[0] ? s->access.department : NULL, "region",
        s->access.region[0] ? s->access.region : NULL, "training_valid_until",
        s->access.training_valid_until ? trained : NULL, "status", s->status, "password",
        s->has_password, "totp", s->totp_enabled, "created_at", created, "updated_at", updated);
}

/* Least privilege: the principal must hold every scope it gives (cu_req_may_grant). */
static enum cu_err check_grant(struct cu_req *req, struct cu_resp *resp, const char *target,
                               uint64_t scopes)
{
    return cu_req_may_grant(req, resp, "access.denied", target, scopes);
}

/* access_fields(req, resp, body, a, given): overlays on a the roles, department, region and
 * training_valid_until the body names (null clears one); roles must be known to the policy. */
enum { GIVEN_ROLES = 1, GIVEN_DEPARTMENT = 2, GIVEN_REGION = 4, GIVEN_TRAINING = 8 };

static enum cu_err access_fields(struct cu_req *req, struct cu_resp *resp, json_t *body,
                                 struct cu_staff_access *a, unsigned *given)
{
    static const char *const attrs[] = {"department", "region"};
    static const unsigned bits[] = {GIVEN_DEPARTMENT, GIVEN_REGION};
    char *const dst[] = {a->department, a->region};
    json_t *v;
    bool roles = false;
    enum cu_err rc = cu_req_roles(req, resp, body, a->roles, sizeof(a->roles), &roles);

    if (rc != CU_OK)
        return rc;
    *given = roles ? GIVEN_ROLES : 0;
    for (size_t k = 0; k < 2; k++) {
        v = json_object_get(body, attrs[k]);
        if (v == NULL)
            continue;
        *given |= bits[k];
        if (json_is_null(v)) {
            dst[k][0] = '\0';
        } else if (!json_is_string(v) || json_string_length(v) >= CU_STAFF_ATTR_BYTES) {
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field '%s' must be a string of at most 64 characters, or null",
                                attrs[k]);
        } else {
            snprintf(dst[k], CU_STAFF_ATTR_BYTES, "%s", json_string_value(v));
        }
    }
    v = json_object_get(body, "training_valid_until");
    if (v != NULL) {
        *given |= GIVEN_TRAINING;
        if (json_is_null(v))
            a->training_valid_until = 0;
        else if (!json_is_string(v) ||
                 cu_clock_parse(json_string_value(v), &a->training_valid_until) != CU_OK ||
                 a->training_valid_until <= 0)
            return cu_resp_fail(resp, CU_E_INVALID,
                                "field 'training_valid_until' must be an "
                                "RFC 3339 time after 1970, or null");
    }
    return CU_OK;
}

static enum cu_err body_of(struct cu_req *req, struct cu_resp *resp, const char *const *allowed,
                           size_t n, json_t **out)
{
    const char *bad = NULL;
    enum cu_err rc = cu_req_json(req, resp, out);
    if (rc == CU_OK && cu_json_only_keys(*out, allowed, n, &bad) != CU_OK) {
        rc = cu_resp_fail(resp, CU_E_INVALID, "unknown field '%.64s'", bad);
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static enum cu_err create_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct staff_job *j = arg;
    enum cu_err rc;

    cu_crypto_wipe(&j->s, sizeof(j->s));
    j->why[0] = '\0';
    rc = cu_identity_staff_add(j->req->app->identity, db, j->email, j->name, j->scopes, &j->s,
                               j->why);
    if (rc == CU_OK && j->access_given)
        rc = cu_identity_staff_set_access(j->req->app->identity, db, j->s.id, &j->access, j->why);
    if (rc == CU_OK)
        j->s.access = j->access;
    if (rc == CU_OK)
        rc = cu_work_audit(
            w, "staff.create", j->s.id, "success",
            json_pack("{s:o, s:s}", "scopes", cu_resp_scopes(j->scopes), "roles", j->access.roles));
    if (rc == CU_E_INVALID || rc == CU_E_TOO_LARGE || rc == CU_E_EXISTS)
        return cu_resp_fail(j->resp, rc == CU_E_EXISTS ? rc : CU_E_INVALID, "%s", j->why);
    return apply_fail(j, rc, "the staff member was not added");
}

static enum cu_err create_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct staff_job *j = arg;
    (void)req;
    return cu_resp_json(resp, 201, staff_json(&j->s));
}

enum cu_err cu_handle_staff_create(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {
        "email", "name", "scopes", "roles", "region", "department", "training_valid_until"};
    char err[CU_JSON_ERR_BYTES];
    struct staff_job *j = staff_job_new(req, resp);
    enum cu_err rc = j != NULL ? body_of(req, resp, allowed, 7, &j->body) : resp->err;

    if (rc != CU_OK)
        return rc;
    if (cu_json_get_string(j->body, "email", true, (size_t)CU_EMAIL_MAX * 2, &j->email, err) !=
            CU_OK ||
        cu_json_get_string(j->body, "name", true, (size_t)CU_STAFF_NAME_MAX * 4, &j->name, err) !=
            CU_OK)
        rc = cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if (rc == CU_OK)
        rc = cu_req_scopes(j->body, resp, !json_object_get(j->body, "roles"), &j->scopes);
    if (rc == CU_OK)
        rc = access_fields(req, resp, j->body, &j->access, &j->access_given);
    /* a role's permissions count as given, as scopes do */
    if (rc == CU_OK)
        rc = check_grant(req, resp, "",
                         j->scopes | cu_policy_roles_permissions(req->policy, j->access.roles));
    if (rc != CU_OK)
        return resp->err ? resp->err : rc;
    return cu_req_change(req, create_apply, create_answer, j);
}

enum cu_err cu_handle_staff_list(struct cu_req *req, struct cu_resp *resp)
{
    const char *after = NULL;
    struct cu_staff_info *items = NULL;
    struct cu_db *db = NULL;
    size_t limit = 100;
    size_t n = 0;
    enum cu_err rc;

    rc = cu_req_page(req, resp, valid_staff_id, "a staff id", &after, &limit);
    if (rc != CU_OK)
        return rc;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_identity_staff_list(req->app->identity, db, after, limit, &items, &n);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "staff.list", "", "success",
                          json_pack("{s:I}", "count", (json_int_t)n));
    if (rc != CU_OK) {
        if (items != NULL)
            cu_crypto_wipe(items, n * sizeof(*items));
        cu_free(items);
        return cu_resp_fail(resp, rc, "the staff could not be listed");
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, staff_json(&items[i]));
    json_t *v =
        json_pack("{s:o, s:s?}", "items", a, "next_after", n == limit ? items[n - 1].id : NULL);
    cu_crypto_wipe(items, n * sizeof(*items));
    cu_free(items);
    return cu_resp_json(resp, 200, v);
}

static enum cu_err staff_read(struct cu_req *req, struct cu_resp *resp, struct cu_staff_info *s)
{
    struct cu_db *db = NULL;
    enum cu_err rc;
    if (!valid_id(req->params[0], "stf_"))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be stf_ and 16 hex digits");
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_identity_staff_get(req->app->identity, db, req->params[0], s);
    if (rc == CU_E_NOT_FOUND)
        return cu_resp_fail(resp, rc, "no staff member has this id");
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the staff member could not be read");
    return CU_OK;
}

/* The lockout state of a staff member, for administrators. */
static json_t *lockout_json(struct cu_req *req, const char *id)
{
    struct cu_credential_info ci;
    char locked[CU_RFC3339_BYTES] = "";
    struct cu_db *db = NULL;
    if (cu_req_db(req, &db) != CU_OK ||
        cu_identity_credential_info(req->app->identity, db, CU_SUBJECT_STAFF, id, &ci) != CU_OK)
        return json_null();
    if (ci.locked_until)
        cu_clock_format(ci.locked_until, locked);
    return json_pack("{s:i, s:s?}", "failed_sign_ins", (int)ci.failures, "locked_until",
                     ci.locked_until ? locked : NULL);
}

enum cu_err cu_handle_staff_get(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_staff_info s;
    enum cu_err rc;

    memset(&s, 0, sizeof(s));
    rc = staff_read(req, resp, &s);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "staff.read", s.id, "success", NULL);
    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the read could not be audited");
    json_t *v = staff_json(&s);
    json_object_set_new(v, "lockout", lockout_json(req, s.id));
    cu_crypto_wipe(&s, sizeof(s));
    return cu_resp_json(resp, 200, v);
}

static enum cu_err patch_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct staff_job *j = arg;
    struct cu_identity *idn = j->req->app->identity;
    char id[CU_SUBJECT_ID_BYTES];
    enum cu_err rc;

    snprintf(id, sizeof(id), "%.*s", (int)sizeof(id) - 1, j->req->params[0]);
    rc = still_may(j, w, db, id,
                   j->scopes | ((j->access_given & GIVEN_ROLES)
                                    ? cu_policy_roles_permissions(j->req->policy, j->access.roles)
                                    : 0));
    if (rc != CU_OK || j->refused)
        return apply_fail(j, rc, "the staff member was not changed");
    rc = cu_identity_staff_set(idn, db, id, j->scopes, j->status);
    if (rc == CU_OK && j->access_given) {
        /* over what is stored now, only the fields the body names: a change made meanwhile
         * to the others stays */
        struct cu_staff_access a;
        rc = cu_identity_staff_access(db, id, &a);
        if (j->access_given & GIVEN_ROLES)
            memcpy(a.roles, j->access.roles, sizeof(a.roles));
        if (j->access_given & GIVEN_DEPARTMENT)
            memcpy(a.department, j->access.department, sizeof(a.department));
        if (j->access_given & GIVEN_REGION)
            memcpy(a.region, j->access.region, sizeof(a.region));
        if (j->access_given & GIVEN_TRAINING)
            a.training_valid_until = j->access.training_valid_until;
        if (rc == CU_OK)
            rc = cu_identity_staff_set_access(idn, db, id, &a, j->why);
    }
    if (rc == CU_OK)
        rc = cu_work_audit(w, "staff.update", id, "success",
                           json_pack("{s:o, s:s?, s:s?}", "scopes", cu_resp_scopes(j->scopes),
                                     "status", j->status, "roles",
                                     (j->access_given & GIVEN_ROLES) ? j->access.roles : NULL));
    if (rc == CU_OK)
        rc = cu_identity_staff_get(idn, db, id, &j->s);
    return apply_fail(j, rc, "the staff member was not changed");
}

static enum cu_err patch_answer(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct staff_job *j = arg;
    (void)req;
    if (j->refused)
        return refused_answer(resp, j);
    return cu_resp_json(resp, 200, staff_json(&j->s));
}

enum cu_err cu_handle_staff_patch(struct cu_req *req, struct cu_resp *resp)
{
    static const char *const allowed[] = {"scopes", "status",     "roles",
                                          "region", "department", "training_valid_until"};
    char err[CU_JSON_ERR_BYTES];
    struct staff_job *j = staff_job_new(req, resp);
    enum cu_err rc = j != NULL ? staff_read(req, resp, &j->s) : resp->err;

    if (rc == CU_OK)
        rc = body_of(req, resp, allowed, 6, &j->body);
    if (rc == CU_OK) {
        j->access = j->s.access;
        rc = access_fields(req, resp, j->body, &j->access, &j->access_given);
    }
    if (rc == CU_OK)
        rc = cu_req_scopes(j->body, resp, false, &j->scopes);
    if (rc == CU_OK && cu_json_get_string(j->body, "status", false, 16, &j->status, err) != CU_OK)
        rc = cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if (rc == CU_OK && j->status && strcmp(j->status, "active") != 0 &&
        strcmp(j->status, "disabled") != 0)
        rc = cu_resp_fail(resp, CU_E_INVALID, "field 'status' must be active or disabled");
    /* Changing anything of someone needs every scope they have and will have: else
     * staff.write would reach every scope by re-enabling or re-scoping a stronger account. */
    if (rc == CU_OK)
        rc = check_grant(req, resp, j->s.id,
                         j->scopes | j->s.scopes |
                             cu_policy_roles_permissions(req->policy, j->access.roles) |
                             cu_policy_roles_permissions(req->policy, j->s.access.roles));
    if (rc != CU_OK)
        return resp->err ? resp->err : cu_resp_fail(resp, rc, "the staff member was not changed");
    return cu_req_change(req, patch_apply, patch_answer, j);
}

/* may_act_on_customer(j, w, db, id): customers.credentials decided, in the unit, on the
 * customer as stored now (j->gate; a denial is recorded in w). */
static enum cu_err may_act_on_customer(struct staff_job *j, struct cu_work *w, struct cu_db *db,
                                       const char *id)
{
    enum cu_err rc = cu_work_gate(j->req, w, db, id, CU_SCOPE_CUSTOMERS_CREDENTIALS, &j->gate);
    j->refused = j->gate.refused;
    return rc;
}

static enum cu_err password_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct staff_job *j = arg;
    enum cu_err rc = j->pw.kind == CU_SUBJECT_STAFF ? still_may(j, w, db, j->pw.id, 0)
                                                    : may_act_on_customer(j, w, db, j->pw.id);
    if (rc != CU_OK || j->refused)
        return apply_fail(j, rc, "the password could not be set");
    rc = cu_identity_password_record(j->req->app->identity, w, db, &j->pw);
    /* a customer's password changed: an event for monitoring, in the same unit */
    if (rc == CU_OK && j->pw.kind == CU_SUBJECT_CUSTOMER)
        rc = cu_monitor_note(j->req->app->monitor, w, db, "password_changed", j->pw.id, NULL, 0,
                             &j->memo, NULL, NULL);
    return apply_fail(j, rc, "the password could not be set");
}

/* The answer of a change that may have been refused in its unit, else 204. */
static enum cu_err answer_done(struct cu_req *req, struct cu_resp *resp, void *arg)
{
    struct staff_job *j = arg;
    if (j->refused)
        return refused_answer(resp, j);
    return cu_answer_no_content(req, resp, arg);
}

/* PUT …/password: {"password": …} set by a service or an administrator. The policy check and
 * the hash run here (on the hashing lane); the password is stored in the unit of work. */
static enum cu_err set_password(struct cu_req *req, struct cu_resp *resp, enum cu_subject_kind kind)
{
    static const char *const allowed[] = {"password"};
    char err[CU_JSON_ERR_BYTES];
    struct staff_job *j = staff_job_new(req, resp);
    struct cu_db *db = NULL;
    const char *pw = NULL;
    enum cu_err rc;

    if (!valid_id(req->params[0], kind == CU_SUBJECT_STAFF ? "stf_" : "cus_"))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be %s and 16 hex digits",
                            kind == CU_SUBJECT_STAFF ? "stf_" : "cus_");
    rc = j != NULL ? body_of(req, resp, allowed, 1, &j->body) : resp->err;
    if (rc == CU_OK && cu_json_get_string(j->body, "password", true, 4096, &pw, err) != CU_OK)
        rc = cu_resp_fail(resp, CU_E_INVALID, "%s", err);
    if (rc == CU_OK)
        rc = cu_req_db(req, &db);
    if (rc == CU_OK) {
        j->pw.kind = kind;
        snprintf(j->pw.id, sizeof(j->pw.id), "%.*s", (int)sizeof(j->pw.id) - 1, req->params[0]);
        /* The reads first; no read connection is held while the password is hashed. */
        rc = cu_identity_password_read(req->app->identity, db, &j->pw);
        cu_store_release(req->view);
        req->view = NULL;
        if (rc == CU_OK)
            rc = cu_identity_password_prepare(req->app->identity, &j->pw, pw, strlen(pw),
                                              j->pw.email[0] ? j->pw.email : NULL, j->why);
        if (rc == CU_E_INVALID || rc == CU_E_TOO_LARGE)
            rc = cu_resp_fail(resp, CU_E_INVALID, "%s", j->why);
        else if (rc == CU_E_NOT_FOUND)
            rc = cu_resp_fail(resp, rc, "no active account has this id");
        else if (rc == CU_E_UNAVAILABLE) {
            cu_resp_header(resp, "Retry-After", "1");
            rc = cu_resp_fail(resp, rc, "too many password hashes at once; retry shortly");
        } else if (rc != CU_OK)
            rc = cu_resp_fail(resp, rc, "the password could not be set");
    }
    if (pw != NULL)
        cu_crypto_wipe((char *)pw, strlen(pw));
    if (req->body.data != NULL)
        cu_crypto_wipe(req->body.data, req->body.len);
    if (rc != CU_OK)
        return rc;
    return cu_req_change(req, password_apply, answer_done, j);
}

/* Least privilege for acting on a staff member's credentials: the principal must hold every
 * scope the staff member has, or setting their password would be a way to their scopes. */
static enum cu_err may_act_on(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_staff_info s;
    enum cu_err rc;

    memset(&s, 0, sizeof(s));
    rc = staff_read(req, resp, &s);
    if (rc == CU_OK)
        rc = check_grant(req, resp, s.id, s.scopes);
    cu_crypto_wipe(&s, sizeof(s));
    return rc;
}

enum cu_err cu_handle_staff_password(struct cu_req *req, struct cu_resp *resp)
{
    enum cu_err rc = may_act_on(req, resp);
    return rc == CU_OK ? set_password(req, resp, CU_SUBJECT_STAFF) : rc;
}

/* A customer's password: decided on the customer before the hash is paid for, and again in
 * the unit. */
enum cu_err cu_handle_customer_password(struct cu_req *req, struct cu_resp *resp)
{
    enum cu_err rc = valid_id(req->params[0], "cus_")
                         ? cu_req_gate_id(req, resp, CU_SCOPE_CUSTOMERS_CREDENTIALS, req->params[0])
                         : CU_OK;
    return rc == CU_OK ? set_password(req, resp, CU_SUBJECT_CUSTOMER) : rc;
}

struct subject_job {
    struct staff_job base;
    enum cu_subject_kind kind;
};

static enum cu_err lockout_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct subject_job *j = arg;
    enum cu_err rc = j->kind == CU_SUBJECT_STAFF
                         ? still_may(&j->base, w, db, j->base.req->params[0], 0)
                         : may_act_on_customer(&j->base, w, db, j->base.req->params[0]);
    if (rc != CU_OK || j->base.refused)
        return apply_fail(&j->base, rc, "the lockout could not be cleared");
    return apply_fail(&j->base,
                      cu_identity_lockout_clear(j->base.req->app->identity, w, db, j->kind,
                                                j->base.req->params[0]),
                      "the lockout could not be cleared");
}

static enum cu_err lockout_clear(struct cu_req *req, struct cu_resp *resp,
                                 enum cu_subject_kind kind)
{
    struct subject_job *j;
    if (!valid_id(req->params[0], kind == CU_SUBJECT_STAFF ? "stf_" : "cus_"))
        return cu_resp_fail(resp, CU_E_INVALID, "the id is malformed");
    j = cu_req_alloc(req, sizeof(*j), staff_job_clear);
    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
    j->base.req = req;
    j->base.resp = resp;
    j->kind = kind;
    return cu_req_change(req, lockout_apply, answer_done, j);
}

enum cu_err cu_handle_staff_lockout_clear(struct cu_req *req, struct cu_resp *resp)
{
    enum cu_err rc = may_act_on(req, resp);
    return rc == CU_OK ? lockout_clear(req, resp, CU_SUBJECT_STAFF) : rc;
}

enum cu_err cu_handle_customer_lockout_clear(struct cu_req *req, struct cu_resp *resp)
{
    return lockout_clear(req, resp, CU_SUBJECT_CUSTOMER);
}

enum cu_err cu_handle_customer_credentials(struct cu_req *req, struct cu_resp *resp)
{
    struct cu_credential_info ci;
    char changed[CU_RFC3339_BYTES] = "", locked[CU_RFC3339_BYTES] = "";
    struct cu_db *db = NULL;
    enum cu_err rc;

    if (!valid_id(req->params[0], "cus_"))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    if (cu_req_gate_id(req, resp, CU_SCOPE_CUSTOMERS_CREDENTIALS, req->params[0]) != CU_OK)
        return resp->err;
    rc = cu_req_db(req, &db);
    if (rc == CU_OK)
        rc = cu_identity_credential_info(req->app->identity, db, CU_SUBJECT_CUSTOMER,
                                         req->params[0], &ci);
    if (rc == CU_OK)
        rc = cu_req_audit(req, "credential.read", req->params[0], "success", NULL);
    if (rc != CU_OK)
        return cu_resp_fail(resp, rc, "the credentials could not be read");
    if (ci.has_password)
        cu_clock_format(ci.password_changed_at, changed);
    if (ci.locked_until)
        cu_clock_format(ci.locked_until, locked);
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:b, s:s?, s:b, s:i, s:i, s:s?}", "customer_id",
                                  req->params[0], "password", ci.has_password,
                                  "password_changed_at", ci.has_password ? changed : NULL, "totp",
                                  ci.totp_enabled, "recovery_codes_left", ci.recovery_codes_left,
                                  "failed_sign_ins", (int)ci.failures, "locked_until",
                                  ci.locked_until ? locked : NULL));
}

static enum cu_err revoke_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct subject_job *j = arg;
    enum cu_err rc = may_act_on_customer(&j->base, w, db, j->base.req->params[0]);
    if (rc != CU_OK || j->base.refused)
        return apply_fail(&j->base, rc, "the sessions could not be ended");
    return apply_fail(&j->base,
                      cu_identity_session_revoke(j->base.req->app->identity, w, db,
                                                 CU_SUBJECT_CUSTOMER, j->base.req->params[0], NULL),
                      "the sessions could not be ended");
}

enum cu_err cu_handle_customer_sessions_revoke(struct cu_req *req, struct cu_resp *resp)
{
    struct subject_job *j;
    if (!valid_id(req->params[0], "cus_"))
        return cu_resp_fail(resp, CU_E_INVALID, "the id must be cus_ and 16 hex digits");
    j = cu_req_alloc(req, sizeof(*j), staff_job_clear);
    if (j == NULL)
        return cu_resp_fail(resp, CU_E_NOMEM, "out of memory");
    j->base.req = req;
    j->base.resp = resp;
    j->kind = CU_SUBJECT_CUSTOMER;
    return cu_req_change(req, revoke_apply, answer_done, j);
}
