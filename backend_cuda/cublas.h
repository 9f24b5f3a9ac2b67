// cuBLAS from the CUDA toolkit, loaded with dlopen (never linked), as the fp16 baseline of `vmc bench --gpu`.
#pragma once

#include <cstdint>
#include <string>

namespace anybit::backend_cuda {

// Whether libcublas (libcublas.so.13, .12, .11, or $ANYBIT_CUBLAS) loads; `why` says why not.
bool cublas_available(std::string* why = nullptr);

// C[M, N] = A[M, K] . W[N, K]^T in fp16 (row-major device buffers of device 0, on `stream`, a CUstream;
// null: the default stream), cublasHgemm. anybit::Error with cuBLAS's status otherwise.
void cublas_hgemm_nt(std::uint64_t A, std::uint64_t W, std::uint64_t C, int M, int N, int K, void* stream = nullptr);

}  // namespace anybit::backend_cuda
