/*
 * text.h - ASCII case mapping, the one place for it: by table, so no arithmetic on char needs
 * narrowing back. Only ASCII letters change; every other byte (UTF-8 included) is kept.
 */
#ifndef CU_BASE_TEXT_H
#define CU_BASE_TEXT_H

/* cu_ascii_lower(c): c lower-cased if it is an ASCII capital, else c. */
static inline char cu_ascii_lower(char c)
{
    static const char lower_of[] = "abcdefghijklmnopqrstuvwxyz";
    if (c < 'A' || c > 'Z')
        return c;
    return lower_of[c - 'A'];
}

/* cu_ascii_upper(c): c upper-cased if it is an ASCII small letter, else c. */
static inline char cu_ascii_upper(char c)
{
    static const char upper_of[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (c < 'a' || c > 'z')
        return c;
    return upper_of[c - 'a'];
}

#endif
