// SPDX-License-Identifier: LGPL-2.1-or-later
//! request.rs - one request as the block layer sent it (op, offset, length,
//! flags, priority, data), and the two ways to answer it: at once
//! ([`Request::complete`]) or later from any thread ([`Request::defer`], then
//! [`Pending::complete`]).

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Arc, RwLock};

use crate::sys;
use crate::{Error, SharedMemory};

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Fill [`Request::data_mut`] from `offset`.
    Read,
    /// Store [`Request::data`] at `offset`.
    Write,
    /// Make every write completed before it durable.
    Flush,
    /// The range's data is no longer needed (reads may return anything until rewritten).
    Discard,
    /// The range reads as zeros (unmapping it unless `Flags::NOUNMAP`).
    WriteZeroes,
    /// The range's data must be erased, beyond recovery.
    SecureErase,
}

/// The request's flags (`REQ_FUA`, `REQ_PREFLUSH`, ... as the block layer set them).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u64);

impl Flags {
    pub const FUA: Flags = Flags(1 << 0);
    pub const PREFLUSH: Flags = Flags(1 << 1);
    pub const NOUNMAP: Flags = Flags(1 << 2);
    pub const SYNC: Flags = Flags(1 << 3);
    pub const META: Flags = Flags(1 << 4);
    pub const PRIO: Flags = Flags(1 << 5);
    pub const RAHEAD: Flags = Flags(1 << 6);
    pub const BACKGROUND: Flags = Flags(1 << 7);
    pub const NOWAIT: Flags = Flags(1 << 8);
    pub const IDLE: Flags = Flags(1 << 9);
    pub const FAILFAST_DEV: Flags = Flags(1 << 10);
    pub const FAILFAST_TRANSPORT: Flags = Flags(1 << 11);
    pub const FAILFAST_DRIVER: Flags = Flags(1 << 12);
    pub const NOMERGE: Flags = Flags(1 << 13);
    pub const INTEGRITY: Flags = Flags(1 << 14);
    pub const POLLED: Flags = Flags(1 << 15);
    pub const SWAP: Flags = Flags(1 << 16);
    pub const ATOMIC: Flags = Flags(1 << 17);
    /// Posted again after the worker that had it died.
    pub const REQUEUED: Flags = Flags(1 << 63);

    const NAMES: [(Flags, &'static str); 19] = [
        (Flags::FUA, "FUA"),
        (Flags::PREFLUSH, "PREFLUSH"),
        (Flags::NOUNMAP, "NOUNMAP"),
        (Flags::SYNC, "SYNC"),
        (Flags::META, "META"),
        (Flags::PRIO, "PRIO"),
        (Flags::RAHEAD, "RAHEAD"),
        (Flags::BACKGROUND, "BACKGROUND"),
        (Flags::NOWAIT, "NOWAIT"),
        (Flags::IDLE, "IDLE"),
        (Flags::FAILFAST_DEV, "FAILFAST_DEV"),
        (Flags::FAILFAST_TRANSPORT, "FAILFAST_TRANSPORT"),
        (Flags::FAILFAST_DRIVER, "FAILFAST_DRIVER"),
        (Flags::NOMERGE, "NOMERGE"),
        (Flags::INTEGRITY, "INTEGRITY"),
        (Flags::POLLED, "POLLED"),
        (Flags::SWAP, "SWAP"),
        (Flags::ATOMIC, "ATOMIC"),
        (Flags::REQUEUED, "REQUEUED"),
    ];

    /// The raw AZBUSE_RQ_* bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Flags from AZBUSE_RQ_* bits.
    pub const fn from_bits(bits: u64) -> Flags {
        Flags(bits)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        self.union(other)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in Flags::NAMES.iter() {
            if self.contains(*flag) {
                write!(f, "{}{}", if first { "" } else { "|" }, name)?;
                rest &= !flag.0;
                first = false;
            }
        }
        if rest != 0 {
            write!(f, "{}{:#x}", if first { "" } else { "|" }, rest)?;
        } else if first {
            write!(f, "(none)")?;
        }
        Ok(())
    }
}

/// Proof that a request was answered (completed or deferred): a queue's
/// method returns it, and only [`Request`]'s methods make one.
#[must_use = "return it from the queue's method"]
pub struct Done(());

/// Whether a queue's worker still takes completions (see [`Pending`]).
pub(crate) struct Life {
    closed: RwLock<bool>,
}

impl Life {
    pub(crate) fn new() -> Arc<Life> {
        Arc::new(Life { closed: RwLock::new(false) })
    }

    /// From here on, completions of this queue's requests do nothing.
    pub(crate) fn close(&self) {
        *self.closed.write().unwrap_or_else(|e| e.into_inner()) = true;
    }
}

/// The fields every request handle reads.
struct Raw(NonNull<sys::azbuse_io>);

impl Raw {
    fn io(&self) -> &sys::azbuse_io {
        // Safety: the io stays valid until it is completed, which consumes
        // the handle that holds this Raw.
        unsafe { self.0.as_ref() }
    }

    fn op(&self) -> Op {
        match self.io().op {
            sys::AZBUSE_OP_READ => Op::Read,
            sys::AZBUSE_OP_WRITE => Op::Write,
            sys::AZBUSE_OP_FLUSH => Op::Flush,
            sys::AZBUSE_OP_DISCARD => Op::Discard,
            sys::AZBUSE_OP_WRITE_ZEROES => Op::WriteZeroes,
            _ => Op::SecureErase,
        }
    }

    fn data(&self) -> &[u8] {
        let io = self.io();
        if io.buf.is_null() || io.len == 0 {
            return &[];
        }
        // Safety: buf holds len bytes of the request's slot until completion.
        unsafe { std::slice::from_raw_parts(io.buf as *const u8, io.len as usize) }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let io = self.io();
        if io.buf.is_null() || io.len == 0 {
            return &mut [];
        }
        // Safety: as data(); &mut self makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(io.buf as *mut u8, io.len as usize) }
    }

    /// Answer the request. Safety: once per request, while its queue is open.
    unsafe fn complete(&self, result: Result<(), Error>) {
        sys::azbuse_complete(self.0.as_ptr(), result.map_or_else(|e| e.to_c(), |_| 0));
    }

    unsafe fn complete_zeroes(&self) {
        if self.io().op == sys::AZBUSE_OP_READ {
            sys::azbuse_complete_zeroes(self.0.as_ptr());
        } else {
            self.complete(Err(Error::INVALID));
        }
    }

    unsafe fn complete_copy(&self, mem: &'static SharedMemory, offset: u64) {
        let io = self.io();
        let copyable = io.op == sys::AZBUSE_OP_READ || io.op == sys::AZBUSE_OP_WRITE;
        match mem.at(offset, io.len as usize) {
            Some(p) if copyable => sys::azbuse_complete_copy(self.0.as_ptr(), p.cast()),
            _ => self.complete(Err(Error::INVALID)),
        }
    }
}

macro_rules! accessors {
    () => {
        /// What the request asks for.
        pub fn op(&self) -> Op {
            self.raw.op()
        }
        /// Where it starts, in bytes from the start of the device.
        pub fn offset(&self) -> u64 {
            self.raw.io().offset
        }
        /// How many bytes it covers.
        pub fn len(&self) -> u64 {
            self.raw.io().len as u64
        }
        /// Whether it covers no bytes (a flush).
        pub fn is_empty(&self) -> bool {
            self.raw.io().len == 0
        }
        /// Its flags.
        pub fn flags(&self) -> Flags {
            Flags(self.raw.io().flags)
        }
        /// Its I/O priority, IOPRIO_PRIO_VALUE(class, level).
        pub fn ioprio(&self) -> u16 {
            self.raw.io().ioprio
        }
        /// Its tag in its queue (for tracing).
        pub fn tag(&self) -> u32 {
            self.raw.io().tag
        }
        /// A write's data (empty for other ops, and for writes of an engine
        /// with `Features::USER_COPY`, which use `complete_copy`).
        pub fn data(&self) -> &[u8] {
            self.raw.data()
        }
        /// A read's buffer, to fill with `len()` bytes.
        pub fn data_mut(&mut self) -> &mut [u8] {
            self.raw.data_mut()
        }
    };
}

/// A request, handed to a queue's method. Answer it with
/// [`complete`](Request::complete) (or `complete_zeroes`, `complete_copy`),
/// or hand it on with [`defer`](Request::defer).
pub struct Request<'q> {
    raw: Raw,
    life: &'q Arc<Life>,
    _not_send: PhantomData<*mut ()>,
}

impl<'q> Request<'q> {
    pub(crate) fn new(io: NonNull<sys::azbuse_io>, life: &'q Arc<Life>) -> Request<'q> {
        Request { raw: Raw(io), life, _not_send: PhantomData }
    }

    accessors!();

    /// Answer now: `Ok(())`, or the error the submitter gets.
    pub fn complete(self, result: Result<(), Error>) -> Done {
        // Safety: the request is consumed; its queue is open (we are in its method).
        unsafe { self.raw.complete(result) };
        std::mem::forget(self);
        Done(())
    }

    /// Answer a read with zeros, filled by the module (no copy here).
    /// EINVAL for any other op.
    pub fn complete_zeroes(self) -> Done {
        unsafe { self.raw.complete_zeroes() };
        std::mem::forget(self);
        Done(())
    }

    /// Answer a read or write by having the module copy its data straight
    /// between the request and `mem` at `offset` (a read from it, a write
    /// into it): one copy instead of two. For writes, the engine declares
    /// `Features::USER_COPY`. EINVAL if the range lies outside `mem`.
    pub fn complete_copy(self, mem: &'static SharedMemory, offset: u64) -> Done {
        unsafe { self.raw.complete_copy(mem, offset) };
        std::mem::forget(self);
        Done(())
    }

    /// Answer later, from any thread: the [`Pending`] holds the request
    /// (and its data) until its `complete`.
    pub fn defer(self) -> (Done, Pending) {
        let pending = Pending { raw: Some(Raw(self.raw.0)), life: Arc::clone(self.life) };
        std::mem::forget(self);
        (Done(()), pending)
    }
}

impl Drop for Request<'_> {
    /// A request dropped unanswered (a panic on the way) fails with EIO.
    fn drop(&mut self) {
        unsafe { self.raw.complete(Err(Error::IO)) };
    }
}

/// A deferred request: complete it from any thread, once. Dropped without
/// completing, it fails with EIO. After its queue has closed (the worker is
/// exiting), completing it does nothing: the module gives the request to the
/// queue's next worker.
pub struct Pending {
    raw: Option<Raw>,
    life: Arc<Life>,
}

// Safety: the io is the engine's alone between defer and completion, and
// azbuse_complete is thread-safe.
unsafe impl Send for Pending {}

impl Pending {
    fn finish(mut self, answer: impl FnOnce(&Raw)) {
        if let Some(raw) = self.raw.take() {
            let closed = self.life.closed.read().unwrap_or_else(|e| e.into_inner());
            if !*closed {
                answer(&raw);
            }
        }
    }

    /// Answer: `Ok(())`, or the error the submitter gets.
    pub fn complete(self, result: Result<(), Error>) {
        self.finish(|raw| unsafe { raw.complete(result) });
    }

    /// Answer a read with zeros, filled by the module. EINVAL for any other op.
    pub fn complete_zeroes(self) {
        self.finish(|raw| unsafe { raw.complete_zeroes() });
    }

    /// As [`Request::complete_copy`].
    pub fn complete_copy(self, mem: &'static SharedMemory, offset: u64) {
        self.finish(|raw| unsafe { raw.complete_copy(mem, offset) });
    }

    fn raw(&self) -> &Raw {
        self.raw.as_ref().expect("a pending request is answered once")
    }

    /// What the request asks for.
    pub fn op(&self) -> Op {
        self.raw().op()
    }
    /// Where it starts, in bytes.
    pub fn offset(&self) -> u64 {
        self.raw().io().offset
    }
    /// How many bytes it covers.
    pub fn len(&self) -> u64 {
        self.raw().io().len as u64
    }
    /// Whether it covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its flags.
    pub fn flags(&self) -> Flags {
        Flags(self.raw().io().flags)
    }
    /// Its I/O priority.
    pub fn ioprio(&self) -> u16 {
        self.raw().io().ioprio
    }
    /// A write's data.
    pub fn data(&self) -> &[u8] {
        self.raw().data()
    }
    /// A read's buffer, to fill.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.raw.as_mut().expect("a pending request is answered once").data_mut()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            let closed = self.life.closed.read().unwrap_or_else(|e| e.into_inner());
            if !*closed {
                unsafe { raw.complete(Err(Error::IO)) };
            }
        }
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}+{} {:?}", self.op(), self.offset(), self.len(), self.flags())
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.raw {
            Some(r) => write!(f, "pending {:?} {}+{}", r.op(), r.io().offset, r.io().len),
            None => write!(f, "answered"),
        }
    }
}
