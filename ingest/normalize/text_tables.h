/* text_tables.h - the code pages and character classes the mojibake repair works with (data in text_tables.c, generated). */
#ifndef BN_NORMALIZE_TEXT_TABLES_H
#define BN_NORMALIZE_TEXT_TABLES_H

#include <stdint.h>

/* Code pages in the order they are tried (names in bn_cp_names). */
#define BN_CP_COUNT 8
#define BN_CP_LATIN1 0
#define BN_CP_1252 1
#define BN_CP_1251 2
#define BN_CP_MACROMAN 6
#define BN_CP_CP437 7

/* Character classes (bit i = the i-th class of tools/gen-text-tables). */
#define BN_CC_COMMON (1u << 0)      /* no-break space, dashes, ellipsis, ...: common in text and mojibake */
#define BN_CC_C1 (1u << 1)          /* C1 controls */
#define BN_CC_BAD (1u << 2)         /* nearly only seen in mojibake: ¦ ¤ ¨ ¬ ¯ ¸ ƒ ˆ ˇ ˘ ˛ ˜ † ‡ ‰ ◊ � ª º */
#define BN_CC_LAW (1u << 3)         /* ¶ § */
#define BN_CC_CURRENCY (1u << 4)    /* ¢ £ ¥ ₧ € */
#define BN_CC_START_PUNCT (1u << 5) /* ¡ « ¿ © ‘ ‚ “ „ • ‹ ... */
#define BN_CC_END_PUNCT (1u << 6)   /* ® » ˝ ” › ™ */
#define BN_CC_NUMERIC (1u << 7)     /* ² ³ ¹ ± ¼ ½ ¾ × µ ÷ √ ∞ ≠ № ... */
#define BN_CC_KAOMOJI (1u << 8)     /* letters of emoticon faces: Ò-Ö Ù-Ü ò-ö ø-ü ° ... */
#define BN_CC_UPPER_ACC (1u << 9)   /* accented Latin capitals */
#define BN_CC_LOWER_ACC (1u << 10)  /* accented Latin small letters */
#define BN_CC_UPPER_COMMON (1u << 11) /* Greek and Cyrillic capitals, Þ */
#define BN_CC_LOWER_COMMON (1u << 12) /* Greek and Cyrillic small letters */
#define BN_CC_BOX (1u << 13)        /* box drawing and blocks of cp437 */
#define BN_CC_UTF8_FIRST2 (1u << 14) /* a code page's character for a byte 0xC2-0xDF */
#define BN_CC_UTF8_FIRST3 (1u << 15) /* ... for a byte 0xE0-0xEF */
#define BN_CC_UTF8_FIRST4 (1u << 16) /* ... for 0xF0 or 0xF3 */
#define BN_CC_UTF8_CONT (1u << 17)  /* ... for a byte 0x80-0xBF */

typedef struct bn_char_row {
	uint32_t cp;
	uint32_t classes;
	uint8_t pages;             /* bit k: code page k has the character */
	uint8_t byte[BN_CP_COUNT]; /* the character's byte in each code page, 0 when it has none */
} bn_char_row;

/* Every row's cp lies below BN_CHAR_GAP_LO or at or above BN_CHAR_GAP_HI: CJK and most scripts skip the search. */
#define BN_CHAR_GAP_LO 0x2600
#define BN_CHAR_GAP_HI 0xF8FF
#define BN_CHAR_ROWS 478

extern const char *const bn_cp_names[BN_CP_COUNT];
extern const uint8_t bn_cp_sloppy[BN_CP_COUNT];
extern const uint16_t bn_cp1252_c1[32];
extern const bn_char_row bn_char_rows[BN_CHAR_ROWS];
extern const int16_t bn_char_row_lo[0x100]; /* row index of U+0080 + i, or -1 */

#endif
