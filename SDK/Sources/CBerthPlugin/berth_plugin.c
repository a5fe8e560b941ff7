/* The contract is header-only; this file gives the C target an object to build. */
#include "berth_plugin.h"

/** The ABI major this copy of the header describes, for tools that inspect a binary. */
const uint32_t berth_sdk_abi_major = BERTH_ABI_MAJOR;
