// SPDX-License-Identifier: LGPL-2.1-or-later
//! ramdisk.rs - a complete azbuse engine in Rust: a RAM disk.
//!
//! Its memory is mapped in setup, in the supervisor, before any worker is
//! forked: every queue's worker serves the same disk, and a worker that
//! crashes is replaced by one that finds the disk as it was. Reads and
//! writes are answered with complete_copy: the module copies the data
//! straight between the request and the disk, one copy instead of two (as
//! the C mem engine does). The RAM does not outlive the supervisor, so
//! --recover is refused.
//!
//!   azbuse-ramdisk 7 --size 1G --queues 4      # /dev/azbuse7
use azbuse::{Config, Done, Error, Features, QueueParams, Request, SharedMemory, StorageEngine};

struct RamDisk {
    mem: Option<SharedMemory>,
}

struct RamQueue {
    mem: &'static SharedMemory,
}

impl StorageEngine for RamDisk {
    type Queue = RamQueue;
    const NAME: &'static str = "rust-ramdisk";
    const DESCRIPTION: &'static str = "a RAM disk in Rust, shared by every queue's worker";
    const FEATURES: Features = Features::FLUSH
        .with(Features::FUA)
        .with(Features::DISCARD)
        .with(Features::WRITE_ZEROES)
        .with(Features::USER_COPY);

    fn setup(&mut self, cfg: &mut Config) -> Result<(), Error> {
        if cfg.recovering() {
            return Err(Error::with_message(
                22,
                "the RAM went with the supervisor; nothing to recover",
            ));
        }
        if cfg.size() == 0 {
            return Err(Error::with_message(22, "give --size"));
        }
        self.mem = Some(SharedMemory::new(cfg.size())?);
        Ok(())
    }

    fn open_queue(&'static self, _: &QueueParams) -> Result<RamQueue, Error> {
        Ok(RamQueue { mem: self.mem.as_ref().ok_or(Error::INVALID)? })
    }
}

impl azbuse::Queue for RamQueue {
    fn read(&mut self, req: Request) -> Done {
        let at = req.offset();
        req.complete_copy(self.mem, at)
    }

    fn write(&mut self, req: Request) -> Done {
        let at = req.offset();
        req.complete_copy(self.mem, at)
    }

    /// RAM is as durable as it gets here: nothing to write back.
    fn flush(&mut self, req: Request) -> Done {
        req.complete(Ok(()))
    }

    fn discard(&mut self, req: Request) -> Done {
        let r = self.mem.zero(req.offset(), req.len());
        req.complete(r)
    }

    fn write_zeroes(&mut self, req: Request) -> Done {
        let r = self.mem.zero(req.offset(), req.len());
        req.complete(r)
    }
}

fn main() {
    std::process::exit(azbuse::run(RamDisk { mem: None }));
}
