/* anybit C API: the quantized matmul for FFI. Every function returns a status; anybit_last_error() gives
   the message of the calling thread's last failure. Buffers are 16-byte aligned: host memory for
   anybit_matmul, device memory of GPU 0 (CUdeviceptr values) for anybit_matmul_device. */
#ifndef ANYBIT_C_API_H
#define ANYBIT_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  ANYBIT_OK = 0,
  ANYBIT_ERROR_NULL_POINTER = 1,
  ANYBIT_ERROR_MISALIGNED_POINTER = 2,
  ANYBIT_ERROR_UNSUPPORTED_FORMAT = 3,
  ANYBIT_ERROR_UNSUPPORTED_SHAPE = 4,
  ANYBIT_ERROR_GROUP_SIZE = 5,
  ANYBIT_ERROR_ZERO_POINTS = 6,
  ANYBIT_ERROR_NO_GPU = 7,
  ANYBIT_ERROR_INTERNAL = 8,
  ANYBIT_ERROR_INVALID_ARGUMENT = 9, /* an enum value outside its range */
  ANYBIT_ERROR_WORKSPACE = 10,       /* the workspace is smaller than the schedule needs */
  ANYBIT_ERROR_WEIGHT_CODE = 11      /* anybit_pack_weights: a NaN or inf code, or one beyond the format's bits */
} anybit_status;

typedef enum { ANYBIT_DEVICE_BEST = 0, ANYBIT_DEVICE_GPU = 1, ANYBIT_DEVICE_SIM = 2 } anybit_device;
typedef enum { ANYBIT_ZEROS_NONE = 0, ANYBIT_ZEROS_INT = 1, ANYBIT_ZEROS_FLOAT = 2 } anybit_zeros;

typedef struct {
  const char* weight_type;      /* "int3", "uint4", "f4e2m1", ... */
  const char* activation_type;  /* "f16" or "bf16" */
  int group;                    /* a multiple of 16 dividing K; K for per-channel scales */
  anybit_zeros zeros;
  int bias; /* nonzero: C = A . W^T + bias[N] */
} anybit_format;

/* Bytes of the packed weight layout for N x K codes. */
anybit_status anybit_packed_size(const anybit_format* format, int64_t N, int64_t K, size_t* bytes);
/* Packs N x K codes (one per byte) into `packed` (anybit_packed_size bytes). Every code must be a finite value
   of the format (no NaN or inf code, nothing beyond its bits): an error status naming the weight otherwise. */
anybit_status anybit_pack_weights(const anybit_format* format, const uint8_t* codes, int64_t N, int64_t K, uint8_t* packed);
/* C = A . W^T (+ bias) with W = (decode(q) - z) * s; zeros and bias are NULL when the format has none. */
anybit_status anybit_matmul(const anybit_format* format, int64_t M, int64_t N, int64_t K, const void* A,
                            const void* packed_weights, const void* scales, const void* zeros, const void* bias,
                            void* C, anybit_device device);
/* Bytes of workspace anybit_matmul_device needs for this problem on GPU 0 (0: none): split-K partial sums,
   and the bf16 split of A for formats beyond f16 with f16 activations. */
anybit_status anybit_workspace_size(const anybit_format* format, int64_t M, int64_t N, int64_t K, size_t* bytes);
/* anybit_matmul on device memory, queued on `stream` (a CUstream; NULL: the default stream). `workspace`
   may be NULL: the call then allocates it and waits for the kernels before returning. */
anybit_status anybit_matmul_device(const anybit_format* format, int64_t M, int64_t N, int64_t K, const void* A,
                                   const void* packed_weights, const void* scales, const void* zeros, const void* bias,
                                   void* C, void* workspace, size_t workspace_bytes, void* stream);
/* The message of this thread's last failure ("" after success). */
const char* anybit_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
