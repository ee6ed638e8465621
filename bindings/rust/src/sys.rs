// SPDX-License-Identifier: LGPL-2.1-or-later
//! sys.rs - the C API of libazbuse (include/azbuse/engine.h, azbuse.h,
//! uapi.h), written by hand: the structs field for field, the functions an
//! engine calls. tests/layout.rs checks every size and offset against what a
//! C compiler makes of the headers.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_uint, c_void};

pub const AZBUSE_ENGINE_API_VERSION: u32 = 1;

pub const AZBUSE_CAP_FLUSH: u32 = 1 << 0;
pub const AZBUSE_CAP_FUA: u32 = 1 << 1;
pub const AZBUSE_CAP_DISCARD: u32 = 1 << 2;
pub const AZBUSE_CAP_WRITE_ZEROES: u32 = 1 << 3;
pub const AZBUSE_CAP_SECURE_ERASE: u32 = 1 << 4;
pub const AZBUSE_CAP_READ_ONLY: u32 = 1 << 5;
pub const AZBUSE_CAP_ROTATIONAL: u32 = 1 << 6;
pub const AZBUSE_CAP_USER_COPY: u32 = 1 << 7;

pub const AZBUSE_OP_READ: u8 = 0;
pub const AZBUSE_OP_WRITE: u8 = 1;
pub const AZBUSE_OP_FLUSH: u8 = 2;
pub const AZBUSE_OP_DISCARD: u8 = 3;
pub const AZBUSE_OP_WRITE_ZEROES: u8 = 4;
pub const AZBUSE_OP_SECURE_ERASE: u8 = 5;

pub const AZBUSE_LOG_ERR: c_int = 3;
pub const AZBUSE_LOG_WARN: c_int = 4;
pub const AZBUSE_LOG_INFO: c_int = 6;

/// struct azbuse_io: one request.
#[repr(C)]
pub struct azbuse_io {
    pub op: u8,
    pub ioprio: u16,
    pub tag: u32,
    pub flags: u64,
    pub offset: u64,
    pub len: u32,
    pub buf: *mut c_void,
    pub engine_data: [*mut c_void; 2],
}

/// struct azbuse_option: one -o key=value (or --size, --path ...).
#[repr(C)]
pub struct azbuse_option {
    pub key: *const c_char,
    pub value: *const c_char,
}

/// struct azbuse_engine_config: what setup() is told and decides.
#[repr(C)]
pub struct azbuse_engine_config {
    pub size_bytes: u64,
    pub logical_block_size: u32,
    pub nr_queues: u32,
    pub caps: u32,
    pub reserved0: u32,
    pub options: *const azbuse_option,
    pub nr_options: usize,
    pub error: *mut c_char,
    pub error_size: usize,
    pub recovering: c_int,
    pub recover_options: *mut c_char,
    pub recover_options_size: usize,
    pub shard_chunk_bytes: u32,
    pub route_queue: bool,
    pub route_chosen: bool,
    pub reserved1: [u8; 2],
    pub direct_map_chunk_bytes: u32,
    pub direct_map_user_bytes: u32,
    pub group: [c_char; 512],
}

/// struct azbuse_queue_params: what a worker is told when it opens its queue.
#[repr(C)]
pub struct azbuse_queue_params {
    pub queue: u16,
    pub nr_queues: u16,
    pub nr_slots: u32,
    pub size_bytes: u64,
    pub numa_node: c_int,
    pub direct_map: *mut c_void,
    pub direct_map_bytes: u64,
    pub dev_id: u32,
    pub data_area: *mut c_void,
    pub data_area_bytes: u64,
}

/// struct azbuse_control (opaque).
#[repr(C)]
pub struct azbuse_control {
    _private: [u8; 0],
}

pub type io_fn = unsafe extern "C" fn(queue: *mut c_void, io: *mut azbuse_io);

/// struct azbuse_engine_ops: the ops table.
#[repr(C)]
pub struct azbuse_engine_ops {
    pub struct_size: u32,
    pub api_version: u32,
    pub name: *const c_char,
    pub description: *const c_char,
    pub option_keys: *const *const c_char,
    pub setup: Option<
        unsafe extern "C" fn(cfg: *mut azbuse_engine_config, engine: *mut *mut c_void) -> c_int,
    >,
    pub teardown: Option<unsafe extern "C" fn(engine: *mut c_void)>,
    pub open_queue: Option<
        unsafe extern "C" fn(
            engine: *mut c_void,
            p: *const azbuse_queue_params,
            queue: *mut *mut c_void,
        ) -> c_int,
    >,
    pub close_queue: Option<unsafe extern "C" fn(queue: *mut c_void)>,
    pub read: Option<io_fn>,
    pub write: Option<io_fn>,
    pub flush: Option<io_fn>,
    pub discard: Option<io_fn>,
    pub write_zeroes: Option<io_fn>,
    pub secure_erase: Option<io_fn>,
    pub batch_end: Option<unsafe extern "C" fn(queue: *mut c_void)>,
    pub control: Option<
        unsafe extern "C" fn(
            engine: *mut c_void,
            ctl: *mut azbuse_control,
            request: *const c_char,
            reply: *mut c_char,
            reply_size: usize,
        ) -> c_int,
    >,
    pub queue_control: Option<
        unsafe extern "C" fn(
            queue: *mut c_void,
            msg: *const c_void,
            len: usize,
            reply: *mut c_void,
            reply_len: *mut usize,
        ) -> c_int,
    >,
    pub idle: Option<unsafe extern "C" fn(queue: *mut c_void) -> c_uint>,
}

// Safety: an ops table is immutable data shared by every process of a device.
unsafe impl Sync for azbuse_engine_ops {}

#[link(name = "azbuse")]
extern "C" {
    pub fn azbuse_main(argc: c_int, argv: *mut *mut c_char, ops: *const azbuse_engine_ops)
        -> c_int;
    pub fn azbuse_complete(io: *mut azbuse_io, result: c_int);
    pub fn azbuse_complete_copy(io: *mut azbuse_io, buf: *mut c_void);
    pub fn azbuse_complete_zeroes(io: *mut azbuse_io);
    pub fn azbuse_log(level: c_int, fmt: *const c_char, ...);
    pub fn azbuse_config_option(
        cfg: *const azbuse_engine_config,
        key: *const c_char,
    ) -> *const c_char;
    pub fn azbuse_parse_size(text: *const c_char, bytes: *mut u64) -> c_int;
}
