/* bidnorm/bidnorm.h - umbrella header: the whole public API of libbidnorm. */
#ifndef BIDNORM_H
#define BIDNORM_H

#include "bidnorm/error.h"
#include "bidnorm/rules.h"
#include "bidnorm/source.h"
#include "bidnorm/normalize.h"
#include "bidnorm/avro.h"
#include "bidnorm/ingest.h"
#include "bidnorm/vocab.h"
#include "bidnorm/watch.h"
#include "bidnorm/serve.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library version, "MAJOR.MINOR.PATCH". */
const char *bn_version(void);

#ifdef __cplusplus
}
#endif
#endif
