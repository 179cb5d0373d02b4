# embed.cmake - turns a text file into a C source defining bn_default_rules_text (cmake -DIN=... -DOUT=... -P).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from rules/bidlog.yaml at build time; do not edit. */\n#include <stddef.h>\nconst char bn_default_rules_text[] = {\n${body}0x00};\nconst size_t bn_default_rules_size = ${size};\n")
