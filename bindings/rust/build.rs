// SPDX-License-Identifier: LGPL-2.1-or-later
//! build.rs - link libazbuse: from AZBUSE_LIB_DIR (a build tree, as CMake's
//! cargo target passes it, with an rpath so the examples run from there) or
//! from the installed package (pkg-config). Also writes what a C compiler
//! makes of the engine API's structs (sizes, offsets) for tests/layout.rs.
use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(arg: &str) -> Vec<String> {
    Command::new("pkg-config")
        .args([arg, "azbuse"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn main() {
    println!("cargo:rerun-if-env-changed=AZBUSE_LIB_DIR");
    println!("cargo:rerun-if-env-changed=AZBUSE_INCLUDE_DIR");
    println!("cargo:rerun-if-changed=tests/layout.c");
    let mut cflags = Vec::new();
    if let Ok(dir) = env::var("AZBUSE_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    } else {
        for flag in pkg_config("--libs-only-L") {
            println!("cargo:rustc-link-search=native={}", flag.trim_start_matches("-L"));
        }
    }
    match env::var("AZBUSE_INCLUDE_DIR") {
        Ok(dir) => {
            println!("cargo:rerun-if-changed={}/azbuse/engine.h", dir);
            cflags.push(format!("-I{}", dir));
        }
        Err(_) => cflags.extend(pkg_config("--cflags")),
    }
    // the C side of the layout test
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let exe = out.join("layout-c");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(&cflags)
        .args(["-o", exe.to_str().unwrap(), "tests/layout.c"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let text = if built {
        let o = Command::new(&exe).output().expect("run the layout program");
        String::from_utf8(o.stdout).unwrap()
    } else {
        println!("cargo:warning=cannot compile tests/layout.c with {} (azbuse headers?)", cc);
        "pub const C_LAYOUT: &[(&str, usize)] = &[];\n".to_string()
    };
    fs::write(out.join("c_layout.rs"), text).unwrap();
}
