#include "layout/mma_layouts.h"

namespace anybit::layout {

RegisterLayout mma_m16n8k16_a() { return column_local({2, 2}) * spatial({8, 4}) * local({1, 2}); }
RegisterLayout mma_m16n8k16_b() { return local({2, 1}) * column_spatial({4, 8}) * local({2, 1}); }
RegisterLayout mma_m16n8k16_c() { return local({2, 1}) * spatial({8, 4}) * local({1, 2}); }
RegisterLayout mma_m16n8k32_a() { return column_local({2, 2}) * spatial({8, 4}) * local({1, 4}); }
RegisterLayout mma_m16n8k32_b() { return local({2, 1}) * column_spatial({4, 8}) * local({4, 1}); }

}  // namespace anybit::layout
