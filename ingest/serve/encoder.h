/* encoder.h - the per-thread serving encoder's state, shared by the encoder, `bidnorm encode` and `bidnorm parity` code. */
#ifndef BN_SERVE_ENCODER_H
#define BN_SERVE_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "bidnorm/serve.h"
#include "normalize/record.h"
#include "serve/model.h"
#include "util/buf.h"

/* The encoded value of one feature; ranges index the encoder's pools. */
typedef struct bn_enc_val {
	int is_null;
	uint32_t index;       /* categorical */
	int64_t i;            /* numeric of an integer type */
	double d;             /* numeric (every type) */
	size_t first, count;  /* list: indices; map: entries; passthrough: strings offset and length */
} bn_enc_val;

struct bn_encoder {
	const bn_model *model;
	bn_normalizer *norm;      /* the ingest normalizer: bn_normalize_line fills norm->rec */
	bn_enc_val *vals;         /* per feature */
	int valid;                /* the last call succeeded */
	uint32_t *indices;        /* list elements of all list features */
	size_t nindices, cap_indices;
	double *map_values;       /* map entries of all map features */
	size_t *map_keys;         /* offset of each key in strings */
	size_t *map_key_lens;
	size_t nmap, cap_map;
	bn_buf strings;           /* passthrough values and map keys, each NUL-terminated */
	bn_buf repaired;          /* the input with invalid UTF-8 repaired, when it needs it */
	bn_buf request;           /* rules with rows: the request, kept for bn_encoder_select_row */
	size_t nrows;             /* rows of the last request (0 after a failure) */
	size_t row;               /* the row encoded */
};

/* Append the Avro binary encoding of the last encoded record (schema bn_model_schema_json). BN_OK or BN_ENOMEM. */
int bn_encoder_put_avro(const bn_encoder *e, bn_buf *out);

/* The last encoded value of feature f as JSON text appended to out (indices, numbers, strings, maps). */
int bn_encoder_put_json(const bn_encoder *e, size_t f, bn_buf *out);

#endif
