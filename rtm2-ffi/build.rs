//! Gives librtm2.so the SONAME `librtm2.so`, so programs linked against it by path record
//! `librtm2.so` (found through their rpath or LD_LIBRARY_PATH) rather than a build path.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librtm2.so");
    }
}
