//! Names and helpers shared by shoal's sample applications (DPDK's `shared/common.h`).
