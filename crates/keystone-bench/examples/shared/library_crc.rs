//! CRC32C as the library computes it on this CPU (`data/crc.rs`), for the examples that model
//! the library's work: crc-fast where the CPU has AVX-512 and VPCLMULQDQ (and off x86-64), the
//! crc32c crate on other x86-64 CPUs.

/// CRC32C of `data`, by the implementation the library picks for this CPU.
pub fn library_crc(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if !(std::arch::is_x86_feature_detected!("avx512vl") && std::arch::is_x86_feature_detected!("vpclmulqdq")) {
            return crc32c::crc32c(data);
        }
    }
    crc_fast::crc32_iscsi(data)
}
