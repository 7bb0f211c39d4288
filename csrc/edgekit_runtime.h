/*
 * edgekit runtime types shared by every generated model: tensor descriptions for introspection.
 */
#ifndef EDGEKIT_RUNTIME_H
#define EDGEKIT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    EK_INT8 = 0,
    EK_UINT8 = 1,
    EK_INT16 = 2,
    EK_INT32 = 3,
    EK_FLOAT16 = 4,
    EK_FLOAT32 = 5
} ek_dtype_t;

typedef struct {
    const char *name;
    ek_dtype_t dtype;
    int32_t rank;
    int32_t dims[6];
    size_t bytes;
    float scale;        /* 0 when the tensor is not quantized */
    int32_t zero_point;
} ek_tensor_info_t;

#endif /* EDGEKIT_RUNTIME_H */
