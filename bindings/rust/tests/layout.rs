// SPDX-License-Identifier: LGPL-2.1-or-later
//! layout.rs - src/sys.rs against the C headers: every struct's size and
//! alignment, every field's offset and size, and the constants, as a C compiler makes
//! them (build.rs compiled and ran tests/layout.c).

use azbuse::sys::*;
use azbuse::Flags;
use std::collections::BTreeMap;
use std::mem::{align_of, size_of, MaybeUninit};

include!(concat!(env!("OUT_DIR"), "/c_layout.rs"));

/// offset of a field without offset_of! (Rust 1.63): its address less the struct's
macro_rules! offset {
    ($t:ty, $f:ident) => {{
        let u = MaybeUninit::<$t>::uninit();
        let base = u.as_ptr();
        // Safety: addr_of! makes no reference to the uninitialised field.
        let field = unsafe { std::ptr::addr_of!((*base).$f) };
        field as usize - base as usize
    }};
}

/// size of a field: of what a pointer to it points at
fn pointee_size<T>(_: *const T) -> usize {
    size_of::<T>()
}

macro_rules! field_size {
    ($t:ty, $f:ident) => {{
        let u = MaybeUninit::<$t>::uninit();
        // Safety: as offset!.
        pointee_size(unsafe { std::ptr::addr_of!((*u.as_ptr()).$f) })
    }};
}

macro_rules! layout {
    ($m:ident, $t:ident { $($f:ident),* }) => {
        $m.insert(concat!(stringify!($t), ".size"), size_of::<$t>());
        $m.insert(concat!(stringify!($t), ".align"), align_of::<$t>());
        $(
            $m.insert(concat!(stringify!($t), ".", stringify!($f)), offset!($t, $f));
            $m.insert(concat!(stringify!($t), ".", stringify!($f), ".size"), field_size!($t, $f));
        )*
    };
}

fn rust_layout() -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    layout!(m, azbuse_io { op, ioprio, tag, flags, offset, len, buf, engine_data });
    layout!(m, azbuse_option { key, value });
    layout!(
        m,
        azbuse_engine_config {
            size_bytes,
            logical_block_size,
            nr_queues,
            caps,
            options,
            nr_options,
            error,
            error_size,
            recovering,
            recover_options,
            recover_options_size,
            shard_chunk_bytes,
            route_queue,
            route_chosen,
            direct_map_chunk_bytes,
            direct_map_user_bytes,
            group
        }
    );
    layout!(
        m,
        azbuse_queue_params {
            queue,
            nr_queues,
            nr_slots,
            size_bytes,
            numa_node,
            direct_map,
            direct_map_bytes,
            dev_id,
            data_area,
            data_area_bytes
        }
    );
    layout!(
        m,
        azbuse_engine_ops {
            struct_size,
            api_version,
            name,
            description,
            option_keys,
            setup,
            teardown,
            open_queue,
            close_queue,
            read,
            write,
            flush,
            discard,
            write_zeroes,
            secure_erase,
            batch_end,
            control,
            queue_control,
            idle
        }
    );
    m.insert("AZBUSE_ENGINE_API_VERSION", AZBUSE_ENGINE_API_VERSION as usize);
    m.insert("AZBUSE_CAP_FUA", AZBUSE_CAP_FUA as usize);
    m.insert("AZBUSE_CAP_USER_COPY", AZBUSE_CAP_USER_COPY as usize);
    m.insert("AZBUSE_CAP_READ_ONLY", AZBUSE_CAP_READ_ONLY as usize);
    m.insert("AZBUSE_CAP_ROTATIONAL", AZBUSE_CAP_ROTATIONAL as usize);
    m.insert("AZBUSE_OP_SECURE_ERASE", AZBUSE_OP_SECURE_ERASE as usize);
    m.insert("AZBUSE_RQ_ATOMIC", Flags::ATOMIC.bits() as usize);
    m.insert("AZBUSE_RQ_REQUEUED", Flags::REQUEUED.bits() as usize);
    m.insert("AZBUSE_LOG_INFO", AZBUSE_LOG_INFO as usize);
    m
}

#[test]
fn sys_matches_the_c_headers() {
    assert!(!C_LAYOUT.is_empty(), "build.rs could not compile tests/layout.c");
    let rust = rust_layout();
    let mut wrong = Vec::new();
    for (name, c) in C_LAYOUT {
        match rust.get(name) {
            Some(r) if r == c => {}
            Some(r) => wrong.push(format!("{}: C {}, Rust {}", name, c, r)),
            None => wrong.push(format!("{}: not checked on the Rust side", name)),
        }
    }
    assert_eq!(rust.len(), C_LAYOUT.len(), "the two sides check different things");
    assert!(wrong.is_empty(), "src/sys.rs differs from the C headers:\n{}", wrong.join("\n"));
}
