//! Links the `opcgw` binary with packed relative relocations (DT_RELR) where the C library
//! reads them. A position-independent binary carries one 24-byte relocation for every pointer
//! in its read-only data (vtables, string tables): 51,000-74,000 of them, 1.2-1.8 MB that the
//! loader reads at every start and that stays resident. Packed, they take ~20 KB
//! (docs/performance.md, "The deployed build, packed relocations, a 2 MiB page cache").
//!
//! Only for a native GNU/Linux build whose glibc is 2.36 or newer (the first that reads them;
//! a binary linked this way does not start on an older one). `OPCGW_NO_PACKED_RELOCS=1`
//! switches it off, for a binary that must run on an older glibc than the one it is built on.

use std::env;
use std::process::Command;

/// The first glibc that applies DT_RELR relocations.
const FIRST_GLIBC: (u32, u32) = (2, 36);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OPCGW_NO_PACKED_RELOCS");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if packed_relocations_wanted() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

fn packed_relocations_wanted() -> bool {
    let target = env::var("TARGET").unwrap_or_default();
    let native = env::var("HOST").is_ok_and(|host| host == target);
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux")
        && env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|libc| libc == "gnu");
    if !native || !linux_gnu || custom_linker(&target) {
        return false;
    }
    if env::var_os("OPCGW_NO_PACKED_RELOCS").is_some_and(|v| !v.is_empty() && v != "0") {
        return false;
    }
    glibc_version().is_some_and(|version| version >= FIRST_GLIBC)
}

/// A linker set for this build (cargo-zigbuild, a sysroot or SDK): it may link against another
/// glibc than the build machine's, so the machine's version says nothing.
fn custom_linker(target: &str) -> bool {
    let per_target = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    println!("cargo:rerun-if-env-changed={per_target}");
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    env::var_os("RUSTC_LINKER").is_some()
        || env::var_os(&per_target).is_some()
        || flags.contains("linker=")
}

/// The build machine's glibc, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let output = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let (major, rest) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}
