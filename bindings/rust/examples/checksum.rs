// SPDX-License-Identifier: LGPL-2.1-or-later
//! checksum.rs - an engine that computes something per request: a
//! pass-through to a file that keeps a CRC-32C of every 4 KiB block in a
//! second file and checks it on every read, so a block changed behind the
//! device's back reads as an I/O error instead of wrong data (what
//! dm-integrity does, without its journal: a crash between a block's write
//! and its checksum's can leave that block reading as an error).
//!
//! It also shows completion from other threads: each queue hands its
//! requests to a few threads of its own (started in open_queue, in the
//! worker: threads do not survive the fork), which do the file I/O and the
//! checksums and complete them there, many requests in flight at once.
//!
//!   azbuse-checksum 7 -o path=/var/tmp/disk.img --size 1G [-o threads=4]
//!
//! The checksums go to PATH.sums (-o sums=FILE). A stored checksum of 0
//! means "never written": such a block must read as zeros.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use azbuse::{
    Config, Done, Error, Features, Flags, Level, Op, Pending, QueueParams, Request, StorageEngine,
};

const BLOCK: usize = 4096;

/// CRC-32C (Castagnoli), a byte at a time from a table made once.
struct Crc32c([u32; 256]);

impl Crc32c {
    fn new() -> Crc32c {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
            }
            *e = c;
        }
        Crc32c(t)
    }

    fn of(&self, data: &[u8]) -> u32 {
        !data.iter().fold(!0u32, |c, &b| self.0[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
    }
}

struct Checksum {
    files: Option<Arc<Files>>,
    threads: usize,
}

/// What every queue's threads share.
struct Files {
    data: File,
    sums: File,
    crc: Crc32c,
}

struct ChecksumQueue {
    jobs: Option<Sender<Pending>>,
    threads: Vec<JoinHandle<()>>,
}

fn open_rw(path: &str) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::from(e).context(format!("cannot open {}", path)))
}

impl StorageEngine for Checksum {
    type Queue = ChecksumQueue;
    const NAME: &'static str = "rust-checksum";
    const DESCRIPTION: &'static str =
        "a file whose every 4 KiB block is checked against its CRC-32C";
    const OPTIONS: &'static [&'static str] = &["path", "sums", "threads"];
    const FEATURES: Features = Features::FLUSH.with(Features::FUA);

    fn setup(&mut self, cfg: &mut Config) -> Result<(), Error> {
        let path =
            cfg.option("path").ok_or_else(|| Error::with_message(22, "give -o path=FILE"))?;
        let sums =
            cfg.option("sums").map(str::to_owned).unwrap_or_else(|| format!("{}.sums", path));
        self.threads =
            match cfg.option("threads") {
                Some(t) => t.parse().ok().filter(|n| (1..=64).contains(n)).ok_or_else(|| {
                    Error::with_message(22, format!("threads={}: give 1 to 64", t))
                })?,
                None => 2,
            };
        let data = open_rw(path)?;
        let sums = open_rw(&sums)?;
        let mut size = cfg.size();
        if size == 0 {
            size = data.metadata()?.len();
        }
        if size == 0 || size % BLOCK as u64 != 0 {
            return Err(Error::with_message(
                22,
                format!("give --size, a multiple of 4 KiB ({} has {} bytes)", path, size),
            ));
        }
        if data.metadata()?.len() < size {
            data.set_len(size)?;
        }
        sums.set_len(size / BLOCK as u64 * 4)?;
        cfg.set_size(size);
        cfg.set_logical_block_size(BLOCK as u32);
        self.files = Some(Arc::new(Files { data, sums, crc: Crc32c::new() }));
        Ok(())
    }

    fn open_queue(&'static self, p: &QueueParams) -> Result<ChecksumQueue, Error> {
        let files = self.files.clone().ok_or(Error::INVALID)?;
        let (jobs, queue) = channel::<Pending>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = (0..self.threads)
            .map(|i| {
                let (files, queue) = (Arc::clone(&files), Arc::clone(&queue));
                std::thread::Builder::new()
                    .name(format!("checksum q{} t{}", p.queue, i))
                    .spawn(move || serve(&files, &queue))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChecksumQueue { jobs: Some(jobs), threads })
    }
}

/// A thread: take requests until the queue closes.
fn serve(files: &Files, queue: &Mutex<Receiver<Pending>>) {
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let mut req = match next {
            Ok(r) => r,
            Err(_) => return,
        };
        let result = match req.op() {
            Op::Read => read(files, &mut req),
            Op::Write => write(files, &req),
            Op::Flush => {
                files.data.sync_data().and_then(|_| files.sums.sync_data()).map_err(Error::from)
            }
            _ => Err(Error::NOT_SUPPORTED),
        };
        req.complete(result);
    }
}

fn read_sums(files: &Files, req: &Pending) -> Result<Vec<u8>, Error> {
    let mut sums = vec![0u8; req.len() as usize / BLOCK * 4];
    files.sums.read_exact_at(&mut sums, req.offset() / BLOCK as u64 * 4)?;
    Ok(sums)
}

fn read(files: &Files, req: &mut Pending) -> Result<(), Error> {
    let sums = read_sums(files, req)?;
    let offset = req.offset();
    let data = req.data_mut();
    files.data.read_exact_at(data, offset)?;
    for (i, (block, sum)) in data.chunks(BLOCK).zip(sums.chunks(4)).enumerate() {
        let stored = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
        let crc = files.crc.of(block);
        if crc != stored && !(stored == 0 && block.iter().all(|&b| b == 0)) {
            let at = offset + (i * BLOCK) as u64;
            azbuse::log(
                Level::Error,
                &format!("block at {} fails its checksum ({:08x}, stored {:08x})", at, crc, stored),
            );
            return Err(Error::IO);
        }
    }
    Ok(())
}

fn write(files: &Files, req: &Pending) -> Result<(), Error> {
    let data = req.data();
    let sums: Vec<u8> = data.chunks(BLOCK).flat_map(|b| files.crc.of(b).to_le_bytes()).collect();
    files.data.write_all_at(data, req.offset())?;
    files.sums.write_all_at(&sums, req.offset() / BLOCK as u64 * 4)?;
    if req.flags().contains(Flags::FUA) {
        files.data.sync_data()?;
        files.sums.sync_data()?;
    }
    Ok(())
}

impl ChecksumQueue {
    /// Hand the request to the queue's threads.
    fn hand_on(&mut self, req: Request) -> Done {
        let (done, pending) = req.defer();
        if let Some(jobs) = &self.jobs {
            // a send fails only if every thread died: the request then fails (Pending's drop)
            let _ = jobs.send(pending);
        }
        done
    }
}

impl azbuse::Queue for ChecksumQueue {
    fn read(&mut self, req: Request) -> Done {
        self.hand_on(req)
    }
    fn write(&mut self, req: Request) -> Done {
        self.hand_on(req)
    }
    fn flush(&mut self, req: Request) -> Done {
        self.hand_on(req)
    }
}

impl Drop for ChecksumQueue {
    /// Closing the channel ends the threads once they have finished.
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn main() {
    std::process::exit(azbuse::run(Checksum { files: None, threads: 2 }));
}
