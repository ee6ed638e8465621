// SPDX-License-Identifier: LGPL-2.1-or-later
//! azbuse: block devices implemented in userspace on Linux, in safe Rust.
//!
//! An engine is two types. The [`StorageEngine`] is made once, in the
//! supervisor, where [`StorageEngine::setup`] decides the device's size and
//! makes the state every queue must see. The device then has one worker
//! *process* per hardware queue, each forked from the supervisor (and a
//! crashed one replaced by a new fork): [`StorageEngine::open_queue`] runs in
//! each worker and makes that queue's [`Queue`], whose methods serve the
//! requests the block layer sends, with every flag it gave.
//!
//! What one process per queue means for state: memory the engine maps in
//! `setup` with [`SharedMemory`] (or a file each queue opens) is one state
//! for every queue and survives a worker's crash; plain fields of the engine
//! are each worker's copy as they were at the fork; what a queue allocates is
//! its own. Threads started in `setup` do not survive the fork: start them in
//! `open_queue`.
//!
//! Every request is answered exactly once, and the types make sure of it: a
//! method gets the [`Request`] by value and must return the [`Done`] that
//! only completing it ([`Request::complete`]) or handing it on
//! ([`Request::defer`]) gives. A deferred request is a [`Pending`]: `Send`,
//! with the request's data, completed later from any thread; dropping it
//! fails the request with EIO rather than leaving it hanging, and once its
//! queue has closed, completing it does nothing (the module gives the
//! request to the queue's next worker).
//!
//! ```no_run
//! use azbuse::{Done, Request, StorageEngine, QueueParams, Error, Config, SharedMemory};
//!
//! struct Ram { mem: Option<SharedMemory> }
//! struct RamQueue { mem: &'static SharedMemory }
//!
//! impl StorageEngine for Ram {
//!     type Queue = RamQueue;
//!     const NAME: &'static str = "ram";
//!     fn setup(&mut self, cfg: &mut Config) -> Result<(), Error> {
//!         self.mem = Some(SharedMemory::new(cfg.size())?);
//!         Ok(())
//!     }
//!     fn open_queue(&'static self, _: &QueueParams) -> Result<RamQueue, Error> {
//!         Ok(RamQueue { mem: self.mem.as_ref().unwrap() })
//!     }
//! }
//! impl azbuse::Queue for RamQueue {
//!     fn read(&mut self, mut req: Request) -> Done {
//!         let r = self.mem.read_at(req.offset(), req.data_mut());
//!         req.complete(r)
//!     }
//!     fn write(&mut self, req: Request) -> Done {
//!         let r = self.mem.write_at(req.offset(), req.data());
//!         req.complete(r)
//!     }
//! }
//!
//! fn main() {
//!     std::process::exit(azbuse::run(Ram { mem: None }));
//! }
//! ```

mod engine;
mod error;
mod mem;
mod request;
pub mod sys;

pub use engine::{run, run_with_args, Config, Features, Queue, QueueParams, StorageEngine};
pub use error::Error;
pub use mem::SharedMemory;
pub use request::{Done, Flags, Op, Pending, Request};

use std::ffi::CString;

/// How much a log line matters (the journal files it under this level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
}

/// A line in the device's log (stderr: the journal under systemd, else a
/// file in /run/azbuse), prefixed with who says it ("azbuse1 worker 0").
/// From any process of the device, any thread.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Error => sys::AZBUSE_LOG_ERR,
        Level::Warning => sys::AZBUSE_LOG_WARN,
        Level::Info => sys::AZBUSE_LOG_INFO,
    };
    let line = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // Safety: a "%s" format with one NUL-terminated string.
    unsafe { sys::azbuse_log(level, b"%s\0".as_ptr().cast(), line.as_ptr()) };
}
