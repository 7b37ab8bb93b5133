//! pigz-style parallel gzip: the input is cut into fixed-size blocks, each block is raw-deflated on
//! its own (primed with the previous block's last 32 KiB as dictionary), ended with a sync flush
//! (the last block with a final block), and the pieces are written in order between a fixed gzip
//! header and a trailer whose CRC-32 is combined from the per-block CRCs.
//!
//! Why: one deflate stream is capped near 48 MB/s on this machine even with zlib-rs (DESIGN §9), so
//! beating `pigz -6` needs both cores. The output depends only on the input, the level and the
//! block size, never on the worker count or on how the caller splits its writes.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

/// Deflate's window: the most a block can refer back, so the most dictionary worth priming.
const DICTIONARY_BYTES: usize = 32 * 1024;

/// Settings of [`ParallelGzEncoder`]. The bytes written depend on `level` and `block_size` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzOptions {
    /// zlib level 0..=9 (default 6, gzip's and pigz's default).
    pub level: u32,
    /// Uncompressed bytes per independently deflated block (default 128 KiB, pigz's default).
    pub block_size: usize,
    /// Deflate threads (default 2: the machine's core count). Does not change the output.
    pub workers: usize,
}

impl Default for GzOptions {
    fn default() -> Self {
        GzOptions {
            level: 6,
            block_size: 128 * 1024,
            workers: 2,
        }
    }
}

struct Job {
    seq: u64,
    input: Vec<u8>,
    dictionary: Vec<u8>,
    output: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    input: Vec<u8>,
    dictionary: Vec<u8>,
    output: Vec<u8>,
    crc: Crc,
    result: io::Result<()>,
}

/// A `Write` that gzips into `W` on worker threads. Call [`finish`](Self::finish): dropping the
/// encoder stops the workers but leaves the stream without its last block and trailer. After any
/// error the encoder must be dropped.
pub struct ParallelGzEncoder<W: Write> {
    out: Option<W>,
    block_size: usize,
    /// The block being filled.
    current: Vec<u8>,
    /// Dictionary for `current`: the last 32 KiB of the previous block.
    dictionary: Vec<u8>,
    next_seq: u64,
    next_write: u64,
    in_flight: usize,
    max_in_flight: usize,
    finished_out_of_order: BTreeMap<u64, Done>,
    crc: Crc,
    total_in: u64,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    /// Buffers of completed jobs, reused: first-touch page faults are expensive in this VM.
    spare: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// An encoder with the default options (level 6, 128 KiB blocks, 2 workers). Writes the gzip
    /// header at once.
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_options(out, GzOptions::default())
    }

    /// An encoder with explicit options. Writes the gzip header at once.
    pub fn with_options(mut out: W, options: GzOptions) -> io::Result<Self> {
        if options.level > 9 || options.block_size == 0 || options.workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid gzip options {options:?}"),
            ));
        }
        out.write_all(&gzip_header(options.level))?;
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let level = flate2::Compression::new(options.level);
        let mut workers = Vec::with_capacity(options.workers);
        for i in 0..options.workers {
            let jobs = Arc::clone(&job_rx);
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("aoc-gzip-{i}"))
                .spawn(move || deflate_worker(level, &jobs, &done))?;
            workers.push(handle);
        }
        Ok(ParallelGzEncoder {
            out: Some(out),
            block_size: options.block_size,
            current: Vec::with_capacity(options.block_size),
            dictionary: Vec::new(),
            next_seq: 0,
            next_write: 0,
            in_flight: 0,
            // Two queued blocks per worker keep both cores busy while the caller fills the next.
            max_in_flight: options.workers * 2,
            finished_out_of_order: BTreeMap::new(),
            crc: Crc::new(),
            total_in: 0,
            jobs: Some(job_tx),
            done: done_rx,
            workers,
            spare: Vec::new(),
        })
    }

    /// Deflates the last block, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.in_flight > 0 {
            self.wait_one()?;
        }
        let mut out = self.out.take().expect("writer present until finish");
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the input length modulo 2^32 (RFC 1952 §2.3.1).
        trailer[4..].copy_from_slice(&(self.total_in as u32).to_le_bytes());
        out.write_all(&trailer)?;
        self.stop_workers();
        Ok(out)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let (mut next_input, mut next_dictionary, output) = self.spare.pop().unwrap_or_else(|| {
            (
                Vec::with_capacity(self.block_size),
                Vec::with_capacity(DICTIONARY_BYTES),
                Vec::new(),
            )
        });
        next_input.clear();
        next_dictionary.clear();
        if !last {
            let tail = self.current.len().saturating_sub(DICTIONARY_BYTES);
            next_dictionary.extend_from_slice(&self.current[tail..]);
        }
        let job = Job {
            seq: self.next_seq,
            input: mem::replace(&mut self.current, next_input),
            dictionary: mem::replace(&mut self.dictionary, next_dictionary),
            output,
            last,
        };
        self.next_seq += 1;
        self.jobs
            .as_ref()
            .expect("workers running until finish")
            .send(job)
            .map_err(|_| workers_gone())?;
        self.in_flight += 1;
        while let Ok(done) = self.done.try_recv() {
            self.complete(done)?;
        }
        while self.in_flight >= self.max_in_flight {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> io::Result<()> {
        let done = self.done.recv().map_err(|_| workers_gone())?;
        self.complete(done)
    }

    fn complete(&mut self, done: Done) -> io::Result<()> {
        self.in_flight -= 1;
        self.finished_out_of_order.insert(done.seq, done);
        while let Some(done) = self.finished_out_of_order.remove(&self.next_write) {
            done.result?;
            self.out
                .as_mut()
                .expect("writer present until finish")
                .write_all(&done.output)?;
            self.crc.combine(&done.crc);
            self.next_write += 1;
            self.spare.push((done.input, done.dictionary, done.output));
        }
        Ok(())
    }

    fn stop_workers(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            // A full block is handed off only once more input arrives, so that `finish` always
            // has a block left to end the deflate stream with.
            if self.current.len() == self.block_size {
                self.submit(false)?;
            }
            let n = (self.block_size - self.current.len()).min(rest.len());
            self.current.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        self.total_in += buf.len() as u64;
        Ok(buf.len())
    }

    /// Flushes what has been compressed so far; buffered input stays buffered, because cutting a
    /// block early would make the output depend on when callers flush.
    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for ParallelGzEncoder<W> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// RFC 1952 header: no file name, MTIME 0, XFL as gzip sets it for the level, OS 255 ("unknown",
/// what flate2 writes) so the bytes do not depend on the building platform.
fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

fn deflate_worker(
    level: flate2::Compression,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<Done>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else { return };
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            // A fresh compressor per block: zlib-rs's `reset()` + `set_dictionary()` left state
            // behind that made a block's bytes depend on which worker had compressed what before
            // (seen on 500 MB inputs with 2 workers), and the output must be a function of the
            // input alone. Raw deflate (no zlib header): the gzip framing is ours.
            let mut compress = Compress::new(level, false);
            deflate_block(
                &mut compress,
                &job.dictionary,
                &job.input,
                &mut job.output,
                job.last,
            )
        }))
        .unwrap_or_else(|_| Err(io::Error::other("deflate worker panicked")));
        let mut crc = Crc::new();
        crc.update(&job.input);
        let reply = Done {
            seq: job.seq,
            input: job.input,
            dictionary: job.dictionary,
            output: job.output,
            crc,
            result,
        };
        if done.send(reply).is_err() {
            return;
        }
    }
}

/// Deflates `input` as one independent piece of a raw deflate stream: byte-aligned by a sync flush,
/// or closed with a final block when `last`.
fn deflate_block(
    compress: &mut Compress,
    dictionary: &[u8],
    input: &[u8],
    output: &mut Vec<u8>,
    last: bool,
) -> io::Result<()> {
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    output.clear();
    // Deflate's worst case is ~0.03% growth plus a few bytes per stored block and the flush.
    output.reserve(input.len() + input.len() / 1000 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let start = compress.total_in();
    loop {
        if output.capacity() - output.len() < 64 {
            output.reserve(output.capacity().max(4096));
        }
        let consumed = (compress.total_in() - start) as usize;
        let status = compress
            .compress_vec(&input[consumed..], output, flush)
            .map_err(io::Error::other)?;
        let consumed = (compress.total_in() - start) as usize;
        match status {
            Status::StreamEnd => return Ok(()),
            // A sync flush is complete once all input is taken and deflate left output space free.
            Status::Ok | Status::BufError
                if !last && consumed == input.len() && output.len() < output.capacity() =>
            {
                return Ok(())
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

fn workers_gone() -> io::Error {
    io::Error::other("gzip worker threads stopped unexpectedly")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Compressible but not trivial: JSON-ish lines from a fixed xorshift sequence.
    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(
                format!("{{\"id\":\"RUSTSEC-{}\",\"n\":{}}}\n", x % 9000, x % 7).as_bytes(),
            );
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], options: GzOptions, chunk: usize) -> Vec<u8> {
        let mut enc = ParallelGzEncoder::with_options(Vec::new(), options).unwrap();
        for piece in data.chunks(chunk.max(1)) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_at_block_boundaries() {
        let options = GzOptions {
            block_size: 64 * 1024,
            ..GzOptions::default()
        };
        for len in [0, 1, 65_535, 65_536, 65_537, 3 * 65_536 + 17, 1_000_000] {
            let data = sample(len);
            assert_eq!(gunzip(&gzip(&data, options, 10_000)), data, "length {len}");
        }
    }

    #[test]
    fn output_depends_on_block_size_but_not_on_workers_or_write_sizes() {
        let data = sample(2_000_000);
        let base = gzip(&data, GzOptions::default(), 1 << 20);
        for (workers, chunk) in [(1, 4096), (3, 777)] {
            let options = GzOptions {
                workers,
                ..GzOptions::default()
            };
            assert_eq!(
                gzip(&data, options, chunk),
                base,
                "workers {workers}, chunk {chunk}"
            );
        }
        let small = &data[..300_000];
        assert_eq!(
            gzip(small, GzOptions::default(), 1),
            gzip(small, GzOptions::default(), small.len())
        );
        let smaller_blocks = GzOptions {
            block_size: 32 * 1024,
            ..GzOptions::default()
        };
        assert_ne!(gzip(&data, smaller_blocks, 1 << 20), base);
    }

    #[test]
    fn header_has_no_name_and_zero_mtime() {
        let out = gzip(b"x", GzOptions::default(), 1);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }
}
