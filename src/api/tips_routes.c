/*
 * tips_routes.c - GET /v1/security-tips?lang=…: short security advice for the company's app to
 * show its customers, in English or Simplified Chinese, maintained as data files
 * (config/tips/en.json and zh-Hans.json, built into the binary; docs/api.md, "Security tips").
 * Public: it holds nothing about anyone.
 */
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "api/http.h"

extern const char cu_tips_en[];
extern const size_t cu_tips_en_len;
extern const char cu_tips_zh[];
extern const size_t cu_tips_zh_len;

/* tag_ok(s): a language tag's shape: 2 to 35 bytes of letters, digits and '-'. */
static bool tag_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 2 || n > 35)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

enum cu_err cu_handle_security_tips(struct cu_req *req, struct cu_resp *resp)
{
    const char *lang = cu_req_query(req, "lang");
    bool zh = false;
    json_t *tips;

    if (lang != NULL && !tag_ok(lang))
        return cu_resp_fail(resp, CU_E_INVALID,
                            "lang must be a language tag (en, zh-Hans, …): letters, digits and "
                            "'-', 2 to 35 of them");
    /* Simplified Chinese for any zh tag; English for everything else */
    zh = lang != NULL && (lang[0] == 'z' || lang[0] == 'Z') && (lang[1] == 'h' || lang[1] == 'H') &&
         (lang[2] == '\0' || lang[2] == '-');
    tips = zh ? json_loadb(cu_tips_zh, cu_tips_zh_len, JSON_REJECT_DUPLICATES, NULL)
              : json_loadb(cu_tips_en, cu_tips_en_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_array(tips)) {
        json_decref(tips);
        return cu_resp_fail(resp, CU_E_CORRUPT, "the security tips could not be read");
    }
    return cu_resp_json(resp, 200,
                        json_pack("{s:s, s:o}", "lang", zh ? "zh-Hans" : "en", "tips", tips));
}
