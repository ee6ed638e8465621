// SPDX-License-Identifier: LGPL-2.1-or-later
//! engine.rs - the two traits an engine implements, what setup() and
//! open_queue() are told, and the glue that turns them into libazbuse's ops
//! table and runs the device with azbuse_main's command line.

use std::ffi::{CStr, CString, OsString};
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use crate::request::Life;
use crate::sys;
use crate::{log, Done, Error, Level, Request};

/// What a device does beyond reads and writes: it advertises exactly these
/// to the block layer, so a request of an op not declared never arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Features(u32);

impl Features {
    /// Reads and writes only.
    pub const NONE: Features = Features(0);
    /// A volatile write cache: FLUSH requests arrive ([`Queue::flush`]).
    pub const FLUSH: Features = Features(1 << 0);
    /// Writes may carry [`crate::Flags::FUA`] (needs FLUSH).
    pub const FUA: Features = Features(1 << 1);
    /// [`Queue::discard`].
    pub const DISCARD: Features = Features(1 << 2);
    /// [`Queue::write_zeroes`].
    pub const WRITE_ZEROES: Features = Features(1 << 3);
    /// [`Queue::secure_erase`].
    pub const SECURE_ERASE: Features = Features(1 << 4);
    /// No writes at all.
    pub const READ_ONLY: Features = Features(1 << 5);
    /// Tell the block layer the device seeks (a disk, not flash).
    pub const ROTATIONAL: Features = Features(1 << 6);
    /// Writes carry no data in [`Request::data`]: the engine answers each
    /// with [`Request::complete_copy`] and the module copies the data there.
    pub const USER_COPY: Features = Features(1 << 7);

    /// Both sets together (usable in a `const`).
    pub const fn with(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// Whether every feature of `other` is in the set.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// The AZBUSE_CAP_* bits that no callback says.
    fn caps(self) -> u32 {
        let mut caps = 0;
        for (f, cap) in [
            (Features::FUA, sys::AZBUSE_CAP_FUA),
            (Features::READ_ONLY, sys::AZBUSE_CAP_READ_ONLY),
            (Features::ROTATIONAL, sys::AZBUSE_CAP_ROTATIONAL),
            (Features::USER_COPY, sys::AZBUSE_CAP_USER_COPY),
        ] {
            if self.contains(f) {
                caps |= cap;
            }
        }
        caps
    }
}

impl std::ops::BitOr for Features {
    type Output = Features;
    fn bitor(self, other: Features) -> Features {
        self.with(other)
    }
}

/// A storage engine: made once, set up in the supervisor, and opened once
/// per queue in that queue's worker process (see the crate's documentation
/// for what that means for its state).
pub trait StorageEngine: Sized + Sync + 'static {
    /// Each queue's own state, made by [`StorageEngine::open_queue`].
    type Queue: Queue;
    /// The engine's name (in logs and `azbusectl list`).
    const NAME: &'static str;
    /// One line on what it is.
    const DESCRIPTION: &'static str = "";
    /// The `-o KEY=VALUE` keys it accepts (others are refused).
    const OPTIONS: &'static [&'static str] = &[];
    /// What the device does beyond reads and writes.
    const FEATURES: Features = Features::NONE;

    /// In the supervisor, before any worker exists: read the options,
    /// decide the size ([`Config::set_size`]), and make the state every
    /// queue shares. An error stops `azbusectl add`/the program with its
    /// message.
    fn setup(&mut self, cfg: &mut Config<'_>) -> Result<(), Error> {
        let _ = cfg;
        Ok(())
    }

    /// In each worker process: that queue's state. The engine is `'static`
    /// there: it lives as long as the worker.
    fn open_queue(&'static self, params: &QueueParams) -> Result<Self::Queue, Error>;
}

/// One queue's request handlers, called on its worker's thread. Each gets
/// the request by value and returns the [`Done`] that answering it gives.
/// The ops past read and write are called only if the engine declared them
/// in [`StorageEngine::FEATURES`]; left as they are, they answer EOPNOTSUPP.
pub trait Queue: Sized + 'static {
    fn read(&mut self, req: Request<'_>) -> Done;
    fn write(&mut self, req: Request<'_>) -> Done {
        req.complete(Err(Error::NOT_SUPPORTED))
    }
    fn flush(&mut self, req: Request<'_>) -> Done {
        req.complete(Err(Error::NOT_SUPPORTED))
    }
    fn discard(&mut self, req: Request<'_>) -> Done {
        req.complete(Err(Error::NOT_SUPPORTED))
    }
    fn write_zeroes(&mut self, req: Request<'_>) -> Done {
        req.complete(Err(Error::NOT_SUPPORTED))
    }
    fn secure_erase(&mut self, req: Request<'_>) -> Done {
        req.complete(Err(Error::NOT_SUPPORTED))
    }
    /// After the worker handed over a batch of requests, before it waits
    /// for more: the place to submit what the methods only prepared.
    fn batch_end(&mut self) {}
}

/// What setup() is told (the command line's --size, options, queues) and decides.
pub struct Config<'a> {
    raw: &'a mut sys::azbuse_engine_config,
}

impl Config<'_> {
    /// The device's size in bytes: --size, or 0 if not given.
    pub fn size(&self) -> u64 {
        self.raw.size_bytes
    }
    /// Set the device's size in bytes.
    pub fn set_size(&mut self, bytes: u64) {
        self.raw.size_bytes = bytes;
    }
    /// The logical block size (512 or 4096 ...).
    pub fn logical_block_size(&self) -> u32 {
        self.raw.logical_block_size
    }
    /// Set the logical block size (a power of two from 512 to 4096).
    pub fn set_logical_block_size(&mut self, bytes: u32) {
        self.raw.logical_block_size = bytes;
    }
    /// How many queues (worker processes) the device has.
    pub fn queues(&self) -> u32 {
        self.raw.nr_queues
    }
    /// Whether this takes over a live device (`--recover`): reopen what
    /// the first setup made, create nothing.
    pub fn recovering(&self) -> bool {
        self.raw.recovering != 0
    }
    /// The value of an option (`-o KEY=VALUE`, `--path` ...), if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        let key = CString::new(key).ok()?;
        // Safety: cfg is valid for setup's duration; the value is a C string in it.
        unsafe {
            let v = sys::azbuse_config_option(self.raw, key.as_ptr());
            if v.is_null() {
                None
            } else {
                CStr::from_ptr(v).to_str().ok()
            }
        }
    }
    /// A size option ("64M", "1.5G"), parsed as the command line's sizes are.
    pub fn size_option(&self, key: &str) -> Result<Option<u64>, Error> {
        let text = match self.option(key) {
            Some(t) => t,
            None => return Ok(None),
        };
        let c = CString::new(text).map_err(|_| Error::INVALID)?;
        let mut bytes = 0u64;
        // Safety: a C string in, a u64 out.
        let ret = unsafe { sys::azbuse_parse_size(c.as_ptr(), &mut bytes) };
        if ret < 0 {
            return Err(Error::with_message(-ret, format!("{}={}: not a size", key, text)));
        }
        Ok(Some(bytes))
    }

    fn set_error(&mut self, e: &Error) {
        let text = e.message().map(str::to_owned).unwrap_or_else(|| e.to_string());
        if self.raw.error.is_null() || self.raw.error_size == 0 {
            return;
        }
        let n = text.len().min(self.raw.error_size - 1);
        // Safety: error has error_size bytes; n + 1 fit.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), self.raw.error as *mut u8, n);
            *self.raw.error.add(n) = 0;
        }
    }
}

/// What a worker is told when it opens its queue.
#[derive(Clone, Debug)]
pub struct QueueParams {
    /// This queue's number, from 0.
    pub queue: u16,
    /// How many queues the device has.
    pub queues: u16,
    /// How many requests can be in flight on it at once.
    pub depth: u32,
    /// The device's size in bytes.
    pub size: u64,
    /// The NUMA node the worker runs on (-1: none).
    pub numa_node: i32,
    /// The device's number (/dev/azbuse<device>).
    pub device: u32,
}

/// A queue's state in its worker: the engine's, and whether it still takes completions.
struct QueueState<Q> {
    user: Q,
    life: Arc<Life>,
}

/// The engine, from run() to setup() (which runs in the same process).
static ENGINE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Run `f`; a panic inside is reported and ends the process, whose
/// requests the supervisor's next worker gets (unwinding into C is not allowed).
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            log(Level::Error, &format!("the engine panicked in {}; the worker exits", what));
            std::process::abort();
        }
    }
}

unsafe extern "C" fn setup_cb<E: StorageEngine>(
    cfg: *mut sys::azbuse_engine_config,
    engine: *mut *mut c_void,
) -> c_int {
    guarded("setup", || {
        let p = ENGINE.load(Ordering::Acquire);
        let cfg = &mut *cfg;
        if p.is_null() {
            return -22;
        }
        let e = &mut *(p as *mut E);
        cfg.caps |= E::FEATURES.caps();
        let mut config = Config { raw: cfg };
        match e.setup(&mut config) {
            Ok(()) => {
                *engine = p;
                0
            }
            Err(err) => {
                config.set_error(&err);
                err.to_c()
            }
        }
    })
}

unsafe extern "C" fn teardown_cb<E: StorageEngine>(engine: *mut c_void) {
    if ENGINE
        .compare_exchange(engine, std::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        guarded("teardown", || drop(Box::from_raw(engine as *mut E)));
    }
}

unsafe extern "C" fn open_queue_cb<E: StorageEngine>(
    engine: *mut c_void,
    p: *const sys::azbuse_queue_params,
    queue: *mut *mut c_void,
) -> c_int {
    guarded("open_queue", || {
        // Safety: in a worker, the engine is never freed: 'static holds.
        let e: &'static E = &*(engine as *const E);
        let p = &*p;
        let params = QueueParams {
            queue: p.queue,
            queues: p.nr_queues,
            depth: p.nr_slots,
            size: p.size_bytes,
            numa_node: p.numa_node,
            device: p.dev_id,
        };
        match e.open_queue(&params) {
            Ok(q) => {
                let st = Box::new(QueueState { user: q, life: Life::new() });
                *queue = Box::into_raw(st) as *mut c_void;
                0
            }
            Err(err) => {
                log(Level::Error, &format!("queue {}: {}", params.queue, err));
                err.to_c()
            }
        }
    })
}

unsafe extern "C" fn close_queue_cb<Q: Queue>(queue: *mut c_void) {
    let st = Box::from_raw(queue as *mut QueueState<Q>);
    st.life.close();
    guarded("close_queue", || drop(st));
}

/// One request callback per op: the queue's method, its Done dropped.
macro_rules! io_callback {
    ($name:ident, $method:ident) => {
        unsafe extern "C" fn $name<Q: Queue>(queue: *mut c_void, io: *mut sys::azbuse_io) {
            let st = &mut *(queue as *mut QueueState<Q>);
            let io = match NonNull::new(io) {
                Some(io) => io,
                None => return,
            };
            guarded(stringify!($method), || {
                let _done: Done = st.user.$method(Request::new(io, &st.life));
            });
        }
    };
}

io_callback!(read_cb, read);
io_callback!(write_cb, write);
io_callback!(flush_cb, flush);
io_callback!(discard_cb, discard);
io_callback!(write_zeroes_cb, write_zeroes);
io_callback!(secure_erase_cb, secure_erase);

unsafe extern "C" fn batch_end_cb<Q: Queue>(queue: *mut c_void) {
    let st = &mut *(queue as *mut QueueState<Q>);
    guarded("batch_end", || st.user.batch_end());
}

/// A C string that lives as long as the process.
fn leak_cstr(s: &str) -> *const c_char {
    CString::new(s.replace('\0', " ")).unwrap_or_default().into_raw()
}

/// The ops table for E: callbacks exactly for what E declares.
fn ops_for<E: StorageEngine>() -> &'static sys::azbuse_engine_ops {
    let f = E::FEATURES;
    let keys: Vec<*const c_char> =
        E::OPTIONS.iter().map(|k| leak_cstr(k)).chain(std::iter::once(std::ptr::null())).collect();
    let on = |feature: Features, cb: sys::io_fn| if f.contains(feature) { Some(cb) } else { None };
    let ops = sys::azbuse_engine_ops {
        struct_size: std::mem::size_of::<sys::azbuse_engine_ops>() as u32,
        api_version: sys::AZBUSE_ENGINE_API_VERSION,
        name: leak_cstr(E::NAME),
        description: leak_cstr(E::DESCRIPTION),
        option_keys: Box::leak(keys.into_boxed_slice()).as_ptr(),
        setup: Some(setup_cb::<E>),
        teardown: Some(teardown_cb::<E>),
        open_queue: Some(open_queue_cb::<E>),
        close_queue: Some(close_queue_cb::<E::Queue>),
        read: Some(read_cb::<E::Queue>),
        write: if f.contains(Features::READ_ONLY) { None } else { Some(write_cb::<E::Queue>) },
        flush: on(Features::FLUSH, flush_cb::<E::Queue>),
        discard: on(Features::DISCARD, discard_cb::<E::Queue>),
        write_zeroes: on(Features::WRITE_ZEROES, write_zeroes_cb::<E::Queue>),
        secure_erase: on(Features::SECURE_ERASE, secure_erase_cb::<E::Queue>),
        batch_end: Some(batch_end_cb::<E::Queue>),
        control: None,
        queue_control: None,
        idle: None,
    };
    Box::leak(Box::new(ops))
}

/// Run a device served by `engine` with the program's command line, as a
/// C engine's main does (`PROG [ID] --size SIZE [--queues N] [--depth N]
/// [--foreground] [-o KEY=VALUE] ...`; `--help` lists them all). Returns the
/// exit code for `std::process::exit`.
pub fn run<E: StorageEngine>(engine: E) -> i32 {
    run_with_args(std::env::args_os(), engine)
}

/// [`run`] with a given command line (its first item is the program's name).
pub fn run_with_args<E: StorageEngine, I>(args: I, engine: E) -> i32
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    if E::FEATURES.contains(Features::FUA) && !E::FEATURES.contains(Features::FLUSH) {
        eprintln!("{}: Features::FUA needs Features::FLUSH", E::NAME);
        return 1;
    }
    let mut argv: Vec<*mut c_char> = Vec::new();
    for a in args {
        match CString::new(a.into().into_vec()) {
            Ok(c) => argv.push(c.into_raw()),
            Err(_) => {
                eprintln!("{}: an argument holds a NUL byte", E::NAME);
                return 2;
            }
        }
    }
    let argc = argv.len() as c_int;
    argv.push(std::ptr::null_mut());
    let ops = ops_for::<E>();
    let boxed = Box::into_raw(Box::new(engine)) as *mut c_void;
    if ENGINE
        .compare_exchange(std::ptr::null_mut(), boxed, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Safety: boxed was made just above and handed to no one.
        drop(unsafe { Box::from_raw(boxed as *mut E) });
        eprintln!("{}: azbuse::run is already running in this process", E::NAME);
        return 1;
    }
    // Safety: argv is NUL-terminated C strings that outlive the call; ops is 'static.
    let code = unsafe { sys::azbuse_main(argc, argv.as_mut_ptr(), ops) };
    // setup may not have run (--help, a bad option): free the engine then
    let left = ENGINE.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !left.is_null() {
        drop(unsafe { Box::from_raw(left as *mut E) });
    }
    code
}
