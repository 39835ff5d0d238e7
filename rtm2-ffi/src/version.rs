//! The library version (the workspace version) and the ABI version. The string macro
//! `RTM2_VERSION` is written by cbindgen.toml (`after_includes`); a test checks every version
//! macro of include/rtm2.h against Cargo.toml.

use std::ffi::c_char;

/// Major version of the library this header belongs to.
pub const RTM2_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const RTM2_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const RTM2_VERSION_PATCH: u32 = 0;
/// Version of the C ABI. It changes only when an existing function, struct layout or
/// callback signature changes incompatibly; additions (new functions, new fields at the end of
/// structs that carry a `struct_size`, new constants) keep it. 2: `rtm2_message_event` grew
/// `recovered` (its arrays in `on_message_batch` changed stride).
pub const RTM2_ABI_VERSION: u32 = 2;

/// The version of the loaded library, e.g. `"0.1.0"` (compare with `RTM2_VERSION_MAJOR` … to
/// detect a header/library mismatch). Static string: never NULL, never freed. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn rtm2_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_cargo_toml() {
        assert_eq!(RTM2_VERSION_MAJOR.to_string(), env!("CARGO_PKG_VERSION_MAJOR"));
        assert_eq!(RTM2_VERSION_MINOR.to_string(), env!("CARGO_PKG_VERSION_MINOR"));
        assert_eq!(RTM2_VERSION_PATCH.to_string(), env!("CARGO_PKG_VERSION_PATCH"));
        let v = unsafe { std::ffi::CStr::from_ptr(rtm2_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(rtm2_core::VERSION, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn header_version_macros_match_cargo_toml() {
        let header = include_str!("../../include/rtm2.h");
        for (name, value) in [
            ("RTM2_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
            ("RTM2_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
            ("RTM2_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
            ("RTM2_VERSION", concat!("\"", env!("CARGO_PKG_VERSION"), "\"")),
        ] {
            let line = format!("#define {name} {value}");
            assert!(header.lines().any(|l| l.trim() == line), "include/rtm2.h lacks `{line}`: regenerate it");
        }
    }
}
