/*
 * handlers.h - the request handlers that the route table (routes.c) names, one group per
 * service. Each validates its input fully, runs its service calls in one store transaction
 * with the audit record of what it did, and answers JSON.
 */
#ifndef CU_API_HANDLERS_H
#define CU_API_HANDLERS_H

#include "api/http.h"

/* routes.c */
enum cu_err cu_handle_health(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_metrics(struct cu_req *req, struct cu_resp *resp);

/* apikeys_routes.c */
enum cu_err cu_handle_apikeys_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_apikeys_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_apikey_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_apikey_revoke(struct cu_req *req, struct cu_resp *resp);

/* audit_routes.c */
enum cu_err cu_handle_audit_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_checkpoint(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_proof(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_consistency(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_audit_public_key(struct cu_req *req, struct cu_resp *resp);

/* customers_routes.c */
enum cu_err cu_handle_customers_create(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customers_list(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_get(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_patch(struct cu_req *req, struct cu_resp *resp);
enum cu_err cu_handle_customer_erase(struct cu_req *req, struct cu_resp *resp);

#endif
