/*
 * templates.c - the notices' texts, in English and Simplified Chinese, and their rendering
 * (notify.h). A template names its variables as {{name}}; each takes a value from the notice's
 * data, and {{time}} is always there (when the notice was queued, UTC). A value is at most
 * VALUE_MAX bytes of ids, codes, numbers and times: ASCII letters, digits, spaces and
 * _ . , : + -, so that no data can add a header to an e-mail, a line, a link, an address to
 * write to or a phone number to call to a message the company sends.
 *
 * What a notice says is what happened and what to do; it never holds a secret, a code or a
 * link to sign in with (phishing looks exactly like that), and always says what the company
 * never asks for.
 */
#include "notify/notify.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define VALUE_MAX 128
#define LANGS 2 /* 0: English, 1: Simplified Chinese */

struct tpl {
    const char *name;
    const char *vars; /* the variables it may use, separated by spaces ("time" always) */
    const char *subject[LANGS];
    const char *body[LANGS];
};

#define NEVER_EN                                                                                   \
    "\n\nWe will never ask you for your password, a one-time code or a recovery code, by "         \
    "e-mail, message or phone.\n"
#define NEVER_ZH "\n\n我们绝不会通过电子邮件、短信或电话向您索要密码、一次性验证码或恢复码。\n"
#define NOT_YOU_EN                                                                                 \
    " If this was you, there is nothing to do. If it was not, open the app and freeze your "       \
    "accounts, then contact us."
#define NOT_YOU_ZH                                                                                 \
    "如果是您本人操作，无需任何处理；如果不是，请打开应用冻结您的账户，然后联系我们。"

static const struct tpl tpls[] = {
    {"security_notice",
     "decision event_type time",
     {"A security check on your account", "您的账户安全提醒"},
     {"Hello,\n\nOur security checks stopped or held an action on your account for review "
      "({{event_type}}, {{time}})." NOT_YOU_EN "\n\nReference: {{decision}}" NEVER_EN,
      "您好：\n\n我们的安全检查已阻止或暂停审核您账户上的一项操作（{{event_type}}，{{time}}"
      "）。" NOT_YOU_ZH "\n\n参考编号：{{decision}}" NEVER_ZH}},
    {"new_sign_in",
     "device country time",
     {"A new sign-in to your account", "您的账户有新的登录"},
     {"Hello,\n\nYour account was signed in to from a device or country we had not seen "
      "before ({{device}}, {{country}}, {{time}})." NOT_YOU_EN NEVER_EN,
      "您好：\n\n您的账户在一台新的设备或一个新的国家/"
      "地区登录（{{device}}，{{country}}，{{time}}）。" NOT_YOU_ZH NEVER_ZH}},
    {"password_changed",
     "time",
     {"Your password was changed", "您的密码已更改"},
     {"Hello,\n\nThe password of your account was changed ({{time}})." NOT_YOU_EN NEVER_EN,
      "您好：\n\n您账户的密码已更改（{{time}}）。" NOT_YOU_ZH NEVER_ZH}},
    {"second_factor_changed",
     "factor change time",
     {"Your second factor was changed", "您的双重验证已更改"},
     {"Hello,\n\nA second factor of your account ({{factor}}) was {{change}} ({{time}})." NOT_YOU_EN
          NEVER_EN,
      "您好：\n\n您账户的双重验证方式（{{factor}}）已变更：{{change}}（{{time}}）。" NOT_YOU_ZH
          NEVER_ZH}},
    {"new_payee",
     "payee time",
     {"A new payee on your account", "您的账户新增了收款人"},
     {"Hello,\n\nMoney was sent from your account to a payee for the first time ({{payee}}, "
      "{{time}})." NOT_YOU_EN NEVER_EN,
      "您好：\n\n您的账户首次向一位收款人付款（{{payee}}，{{time}}）。" NOT_YOU_ZH NEVER_ZH}},
    {"large_transfer",
     "transfer amount currency time",
     {"A large transfer from your account", "您的账户有一笔大额转账"},
     {"Hello,\n\nA transfer of {{amount}} (minor units of {{currency}}) left your account "
      "({{time}}; reference {{transfer}})." NOT_YOU_EN NEVER_EN,
      "您好：\n\n您的账户转出了一笔 {{amount}}（{{currency}} 最小单位）的款项（{{time}}；参考编号 "
      "{{transfer}}）。" NOT_YOU_ZH NEVER_ZH}},
    {"accounts_frozen",
     "accounts time",
     {"Your accounts are frozen", "您的账户已冻结"},
     {"Hello,\n\n{{accounts}} of your accounts were frozen ({{time}}): no money can leave them "
      "until they are unfrozen. If you did not ask for this, contact us." NEVER_EN,
      "您好：\n\n您的 {{accounts}} "
      "个账户已被冻结（{{time}}"
      "）：解冻之前，任何款项都无法转出。如果这不是您的操作，请联系我们。" NEVER_ZH}},
    {"unfreeze_requested",
     "at time",
     {"Your accounts will be unfrozen", "您的账户将被解冻"},
     {"Hello,\n\nSomeone signed in to your account asked to unfreeze your accounts ({{time}}). "
      "They will be unfrozen at {{at}}. If this was not you, freeze them again now in the app "
      "and contact us." NEVER_EN,
      "您好：\n\n有人登录您的账户并申请解冻您的账户（{{time}}）。账户将于 {{at}} "
      "解冻。如果这不是您的操作，请立即在应用中重新冻结并联系我们。" NEVER_ZH}},
    {"report_received",
     "reference time",
     {"We received your report", "我们已收到您的报告"},
     {"Hello,\n\nThank you: we received your report of suspicious activity ({{time}}). Our "
      "security team will look at it and answer you in the app.\n\nReference: "
      "{{reference}}" NEVER_EN,
      "您好：\n\n感谢您：我们已收到您关于可疑活动的报告（{{time}}"
      "）。我们的安全团队会进行核查，并在应用中答复您。\n\n参考编号：{{reference}}" NEVER_ZH}},
    {"staff_alert",
     "alert severity rule time",
     {"custodia: a {{severity}} alert", "custodia：{{severity}} 级告警"},
     {"A {{severity}} alert was raised ({{time}}): {{alert}}, rule {{rule}}.\n",
      "出现一条 {{severity}} 级告警（{{time}}）：{{alert}}，规则 {{rule}}。\n"}},
    {"staff_case",
     "case severity stage time",
     {"custodia: case {{case}} ({{severity}})", "custodia：案件 {{case}}（{{severity}}）"},
     {"Case {{case}} ({{severity}}) is {{stage}} ({{time}}).\n",
      "案件 {{case}}（{{severity}}）当前阶段：{{stage}}（{{time}}）。\n"}},
};

#define NTPLS (sizeof tpls / sizeof tpls[0])

static const struct tpl *find(const char *name)
{
    for (size_t i = 0; i < NTPLS; i++)
        if (strcmp(tpls[i].name, name) == 0)
            return &tpls[i];
    return NULL;
}

bool cu_notify_template_known(const char *name)
{
    return name != NULL && find(name) != NULL;
}

/* declared(t, var, n): whether the n bytes at var name one of t's variables. */
static bool declared(const struct tpl *t, const char *var, size_t n)
{
    for (const char *p = t->vars; *p;) {
        size_t k = strcspn(p, " ");
        if (k == n && memcmp(p, var, n) == 0)
            return true;
        p += k;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* value_ok(v): at most VALUE_MAX bytes of [A-Za-z0-9 _.,:+-]. */
static bool value_ok(const char *v)
{
    size_t n = strlen(v);

    if (n > VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(" _.,:+-", c) != NULL))
            return false;
    }
    return true;
}

/* expand(t, lang, text, data, out, cap, why): text with its variables replaced. */
static enum cu_err expand(const struct tpl *t, int lang, const char *text, const json_t *data,
                          char *out, size_t cap, char why[CU_NOTIFY_WHY_BYTES])
{
    static const char *const lang_names[LANGS] = {"en", "zh-Hans"};
    size_t o = 0;

    for (const char *p = text; *p;) {
        const char *open = strstr(p, "{{");
        size_t lit = open ? (size_t)(open - p) : strlen(p);
        char num[24];
        const char *v;

        if (o + lit >= cap)
            return CU_E_TOO_LARGE;
        memcpy(out + o, p, lit);
        o += lit;
        if (!open)
            break;
        const char *close = strstr(open + 2, "}}");
        if (!close)
            return CU_E_INVALID;
        size_t vn = (size_t)(close - open - 2);
        char var[40];
        if (vn >= sizeof var || !declared(t, open + 2, vn)) {
            snprintf(why, CU_NOTIFY_WHY_BYTES,
                     "template %s (%s): {{%.*s}} is not one of its variables", t->name,
                     lang_names[lang], (int)(vn < 32 ? vn : 32), open + 2);
            return CU_E_INVALID;
        }
        memcpy(var, open + 2, vn);
        var[vn] = '\0';
        json_t *j = json_object_get(data, var);
        if (json_is_string(j)) {
            v = json_string_value(j);
        } else if (json_is_integer(j)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(j));
            v = num;
        } else {
            snprintf(why, CU_NOTIFY_WHY_BYTES, "template %s (%s): no value for {{%s}}", t->name,
                     lang_names[lang], var);
            return CU_E_INVALID;
        }
        if (!value_ok(v)) {
            snprintf(why, CU_NOTIFY_WHY_BYTES,
                     "template %s (%s): the value of {{%s}} is not an id, code, number or time "
                     "(at most %d bytes of letters, digits, spaces and _ . , : + -)",
                     t->name, lang_names[lang], var, VALUE_MAX);
            return CU_E_INVALID;
        }
        size_t vl = strlen(v);
        if (o + vl >= cap)
            return CU_E_TOO_LARGE;
        memcpy(out + o, v, vl);
        o += vl;
        p = close + 2;
    }
    out[o] = '\0';
    return CU_OK;
}

enum cu_err cu_notify_render(const char *name, const char *lang, const char *data, char *subject,
                             size_t scap, char *body, size_t bcap, char why[CU_NOTIFY_WHY_BYTES])
{
    const struct tpl *t = find(name ? name : "");
    int l = lang != NULL && strncmp(lang, "zh", 2) == 0 ? 1 : 0;
    json_t *d;
    enum cu_err rc;

    why[0] = '\0';
    if (!t) {
        snprintf(why, CU_NOTIFY_WHY_BYTES, "no template called %.64s", name ? name : "");
        return CU_E_NOT_FOUND;
    }
    d = json_loads(data ? data : "{}", JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        snprintf(why, CU_NOTIFY_WHY_BYTES, "template %s: the notice's data is not a JSON object",
                 t->name);
        return CU_E_INVALID;
    }
    rc = expand(t, l, t->subject[l], d, subject, scap, why);
    if (rc == CU_OK)
        rc = expand(t, l, t->body[l], d, body, bcap, why);
    if (rc == CU_E_TOO_LARGE && !why[0])
        snprintf(why, CU_NOTIFY_WHY_BYTES, "template %s: the text is too long", t->name);
    json_decref(d);
    return rc;
}

/* scan(t, text, why): every {{variable}} of text is one of t's. */
static enum cu_err scan(const struct tpl *t, const char *text, char why[CU_NOTIFY_WHY_BYTES])
{
    for (const char *p = strstr(text, "{{"); p; p = strstr(p + 2, "{{")) {
        const char *close = strstr(p + 2, "}}");
        if (!close || !declared(t, p + 2, (size_t)(close - p - 2))) {
            snprintf(why, CU_NOTIFY_WHY_BYTES, "template %s: {{%.32s is not one of its variables",
                     t->name, p + 2);
            return CU_E_INVALID;
        }
    }
    return CU_OK;
}

enum cu_err cu_notify_templates_check(char why[CU_NOTIFY_WHY_BYTES])
{
    for (size_t i = 0; i < NTPLS; i++) {
        for (int l = 0; l < LANGS; l++) {
            if (!tpls[i].subject[l] || !tpls[i].body[l] || !tpls[i].subject[l][0] ||
                !tpls[i].body[l][0]) {
                snprintf(why, CU_NOTIFY_WHY_BYTES, "template %s: a language lacks its text",
                         tpls[i].name);
                return CU_E_INVALID;
            }
            if (scan(&tpls[i], tpls[i].subject[l], why) != CU_OK ||
                scan(&tpls[i], tpls[i].body[l], why) != CU_OK)
                return CU_E_INVALID;
        }
    }
    return CU_OK;
}
