//! BGZF-style parallel gzip: the input is cut into fixed-size chunks and each chunk becomes its own
//! complete gzip member (RFC 1952 §2.2 allows any number of concatenated members; `gzip -dc`,
//! `gzip -t`, `tar xzf`, Python's `gzip` and flate2's `MultiGzDecoder` all read them). Chunks are
//! deflated independently (no shared dictionary) on worker threads and written in order.
//!
//! Every member's header carries an FEXTRA subfield `AK` (SI1 `A`, SI2 `K`, LEN 4) holding the
//! member's total compressed size, little-endian, so a reader can find member boundaries without
//! inflating and decode members in parallel ([`ParallelGzDecoder`]); other readers ignore it.
//!
//! Why: one deflate stream is capped near 48 MB/s on this machine even with zlib-rs (docs/ARCHITECTURE.md §11), so
//! beating `pigz -6` needs both cores, and verifying a large kit needs both cores to inflate. The
//! output depends only on the input, the level and the chunk size, never on the worker count or on
//! how the caller splits its writes.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, Decompress, FlushCompress, FlushDecompress, Status};

/// SI1, SI2 of the FEXTRA subfield holding a member's total compressed size.
pub(crate) const SIZE_SUBFIELD_ID: [u8; 2] = *b"AK";
/// Largest uncompressed size of one member: bounds [`GzOptions::block_size`] and is what
/// [`ParallelGzDecoder`] accepts before refusing a member as hostile.
pub(crate) const MAX_MEMBER_BYTES: usize = 16 << 20;
/// Largest compressed member accepted by the reader: deflate never grows data by more than a
/// fraction of a percent, so anything beyond this is not one of ours.
const MAX_COMPRESSED_MEMBER_BYTES: usize = MAX_MEMBER_BYTES + (1 << 20);
/// Fixed header: ID1 ID2 CM FLG MTIME(4) XFL OS, XLEN, then the subfield SI1 SI2 LEN(2) SIZE(4).
const HEADER_BYTES: usize = 20;
const FEXTRA: u8 = 4;
const FHCRC: u8 = 2;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

/// Settings of [`ParallelGzEncoder`]. The bytes written depend on `level` and `block_size` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzOptions {
    /// zlib level 0..=9 (default 6, gzip's and pigz's default).
    pub level: u32,
    /// Uncompressed bytes per gzip member (default 1 MiB, at most 16 MiB: what readers accept).
    pub block_size: usize,
    /// Deflate threads (default 2: the machine's core count). Does not change the output.
    pub workers: usize,
}

impl Default for GzOptions {
    fn default() -> Self {
        GzOptions {
            level: 6,
            block_size: 1 << 20,
            workers: 2,
        }
    }
}

/// One member's worth of work for a worker thread (deflate or inflate), and its result: the
/// buffers travel back with it to be reused.
struct Job {
    seq: u64,
    input: Vec<u8>,
    output: Vec<u8>,
}

struct Done {
    seq: u64,
    input: Vec<u8>,
    output: Vec<u8>,
    result: io::Result<()>,
}

/// A `Write` that gzips into `W` on worker threads. Call [`finish`](Self::finish): dropping the
/// encoder stops the workers but leaves the stream without its last member. After any error the
/// encoder must be dropped.
pub struct ParallelGzEncoder<W: Write> {
    out: Option<W>,
    block_size: usize,
    /// The chunk being filled.
    current: Vec<u8>,
    next_seq: u64,
    next_write: u64,
    in_flight: usize,
    max_in_flight: usize,
    finished_out_of_order: BTreeMap<u64, Done>,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    /// Buffers of completed jobs, reused: first-touch page faults are expensive in this VM.
    spare: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// An encoder with the default options (level 6, 1 MiB members, 2 workers).
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_options(out, GzOptions::default())
    }

    /// An encoder with explicit options.
    pub fn with_options(out: W, options: GzOptions) -> io::Result<Self> {
        if options.level > 9
            || options.block_size == 0
            || options.block_size > MAX_MEMBER_BYTES
            || options.workers == 0
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid gzip options {options:?}"),
            ));
        }
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let level = options.level;
        let mut workers = Vec::with_capacity(options.workers);
        for i in 0..options.workers {
            let jobs = Arc::clone(&job_rx);
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("aoc-gzip-{i}"))
                .spawn(move || worker(&jobs, &done, "deflate", |i, o| gzip_member(level, i, o)))?;
            workers.push(handle);
        }
        Ok(ParallelGzEncoder {
            out: Some(out),
            block_size: options.block_size,
            current: Vec::with_capacity(options.block_size),
            next_seq: 0,
            next_write: 0,
            in_flight: 0,
            // Two queued chunks per worker keep both cores busy while the caller fills the next.
            max_in_flight: options.workers * 2,
            finished_out_of_order: BTreeMap::new(),
            jobs: Some(job_tx),
            done: done_rx,
            workers,
            spare: Vec::new(),
        })
    }

    /// Compresses the last chunk (an empty member if there was no input at all, so the output is
    /// always a valid gzip file) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || self.next_seq == 0 {
            self.submit()?;
        }
        while self.in_flight > 0 {
            self.wait_one()?;
        }
        let out = self.out.take().expect("writer present until finish");
        self.stop_workers();
        Ok(out)
    }

    fn submit(&mut self) -> io::Result<()> {
        let (mut next_input, output) = self
            .spare
            .pop()
            .unwrap_or_else(|| (Vec::with_capacity(self.block_size), Vec::new()));
        next_input.clear();
        let job = Job {
            seq: self.next_seq,
            input: mem::replace(&mut self.current, next_input),
            output,
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
            self.next_write += 1;
            self.spare.push((done.input, done.output));
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
            let n = (self.block_size - self.current.len()).min(rest.len());
            self.current.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.current.len() == self.block_size {
                self.submit()?;
            }
        }
        Ok(buf.len())
    }

    /// Flushes what has been compressed so far; buffered input stays buffered, because cutting a
    /// member early would make the output depend on when callers flush.
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

/// RFC 1952 member header: FEXTRA only, no file name, MTIME 0, XFL as gzip sets it for the level,
/// OS 255 ("unknown", what flate2 writes) so the bytes do not depend on the building platform; the
/// size subfield is filled in once the member is complete.
fn gzip_header(level: u32) -> [u8; HEADER_BYTES] {
    let xfl = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    let [si1, si2] = SIZE_SUBFIELD_ID;
    [
        0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, xfl, 255, 8, 0, si1, si2, 4, 0, 0, 0, 0, 0,
    ]
}

/// A worker thread: takes jobs until the channel closes, runs `work` on each (a panic becomes an
/// error naming `what`) and sends the result back.
fn worker(
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<Done>,
    what: &str,
    work: impl Fn(&[u8], &mut Vec<u8>) -> io::Result<()>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else { return };
        let result = panic::catch_unwind(AssertUnwindSafe(|| work(&job.input, &mut job.output)))
            .unwrap_or_else(|_| Err(io::Error::other(format!("{what} worker panicked"))));
        let reply = Done {
            seq: job.seq,
            input: job.input,
            output: job.output,
            result,
        };
        if done.send(reply).is_err() {
            return;
        }
    }
}

/// One complete gzip member of `input`: header with the size subfield, raw deflate, CRC-32, ISIZE.
fn gzip_member(level: u32, input: &[u8], output: &mut Vec<u8>) -> io::Result<()> {
    output.clear();
    // Deflate's worst case is ~0.03% growth plus a few bytes per stored block.
    output.reserve(HEADER_BYTES + input.len() + input.len() / 1000 + 64);
    output.extend_from_slice(&gzip_header(level));
    // A fresh compressor per member: zlib-rs's `reset()` once left state behind that made bytes
    // depend on which worker had compressed what before, and the output must be a function of the
    // input alone. Raw deflate (no zlib header): the gzip framing is ours.
    let mut compress = Compress::new(flate2::Compression::new(level), false);
    loop {
        if output.capacity() - output.len() < 64 {
            output.reserve(output.capacity().max(4096));
        }
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&input[consumed..], output, FlushCompress::Finish)
            .map_err(io::Error::other)?;
        if status == Status::StreamEnd {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(input);
    output.extend_from_slice(&crc.sum().to_le_bytes());
    output.extend_from_slice(&(input.len() as u32).to_le_bytes());
    let total =
        u32::try_from(output.len()).map_err(|_| io::Error::other("gzip member over 4 GiB"))?;
    output[16..20].copy_from_slice(&total.to_le_bytes());
    Ok(())
}

fn workers_gone() -> io::Error {
    io::Error::other("gzip worker threads stopped unexpectedly")
}

/// The total compressed size recorded in the `AK` subfield of the gzip member header at the start
/// of `head`, or `None` if the header has no such subfield (a foreign gzip file) or is cut short.
pub(crate) fn member_size_subfield(head: &[u8]) -> Option<u32> {
    if head.len() < 12 || head[..3] != [0x1f, 0x8b, 8] || head[3] & FEXTRA == 0 {
        return None;
    }
    let xlen = usize::from(u16::from_le_bytes([head[10], head[11]]));
    find_size_subfield(head.get(12..12 + xlen)?)
}

fn find_size_subfield(mut extra: &[u8]) -> Option<u32> {
    while extra.len() >= 4 {
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let data = extra.get(4..4 + len)?;
        if extra[..2] == SIZE_SUBFIELD_ID && len == 4 {
            return Some(u32::from_le_bytes(data.try_into().ok()?));
        }
        extra = &extra[4 + len..];
    }
    None
}

/// Decoder threads of [`ParallelGzDecoder`]: the machine's two cores.
const DECODE_WORKERS: usize = 2;
/// Members read ahead of the consumer: bounds memory to a few members (at most
/// [`MAX_MEMBER_BYTES`] each) while keeping both workers busy.
const READ_AHEAD_MEMBERS: usize = 4;

enum Ready {
    Inflated(Done),
    Failed(io::Error),
}

enum NextMember {
    End,
    Member,
    /// A member without the size subfield: its header bytes read so far.
    Foreign(Vec<u8>),
}

/// Reads a stream of gzip members that carry the `AK` size subfield, inflating them in parallel
/// and returning their data in order. Each member is checked against its CRC-32 and ISIZE and
/// refused if it would inflate past [`MAX_MEMBER_BYTES`]. At the first member without the
/// subfield the rest of the stream is read sequentially by flate2's `MultiGzDecoder`.
pub(crate) struct ParallelGzDecoder<R: Read> {
    source: Option<R>,
    input_done: bool,
    /// An error was returned: the stream has a hole, so every later read fails too.
    failed: bool,
    foreign_head: Option<Vec<u8>>,
    tail: Option<flate2::read::MultiGzDecoder<io::Chain<io::Cursor<Vec<u8>>, R>>>,
    next_read: u64,
    next_out: u64,
    in_flight: usize,
    ready: BTreeMap<u64, Ready>,
    current: Vec<u8>,
    position: usize,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    spare_inputs: Vec<Vec<u8>>,
    spare_outputs: Vec<Vec<u8>>,
}

impl<R: Read> ParallelGzDecoder<R> {
    /// Starts the decoder threads; nothing is read until the first `read`.
    pub(crate) fn new(source: R) -> io::Result<Self> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut workers = Vec::with_capacity(DECODE_WORKERS);
        for i in 0..DECODE_WORKERS {
            let jobs = Arc::clone(&job_rx);
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("aoc-gunzip-{i}"))
                .spawn(move || worker(&jobs, &done, "inflate", inflate_member))?;
            workers.push(handle);
        }
        Ok(ParallelGzDecoder {
            source: Some(source),
            input_done: false,
            failed: false,
            foreign_head: None,
            tail: None,
            next_read: 0,
            next_out: 0,
            in_flight: 0,
            ready: BTreeMap::new(),
            current: Vec::new(),
            position: 0,
            jobs: Some(job_tx),
            done: done_rx,
            workers,
            spare_inputs: Vec::new(),
            spare_outputs: Vec::new(),
        })
    }

    /// Reads members and hands them to the workers until enough are queued or the input ends.
    fn fill(&mut self) {
        while !self.input_done && self.in_flight < READ_AHEAD_MEMBERS {
            let mut input = self.spare_inputs.pop().unwrap_or_default();
            let seq = self.next_read;
            match self.read_member(&mut input) {
                Ok(NextMember::End) => self.input_done = true,
                Ok(NextMember::Foreign(head)) => {
                    self.foreign_head = Some(head);
                    self.input_done = true;
                }
                Ok(NextMember::Member) => {
                    let job = Job {
                        seq,
                        input,
                        output: self.spare_outputs.pop().unwrap_or_default(),
                    };
                    let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok());
                    if sent != Some(true) {
                        self.ready.insert(seq, Ready::Failed(workers_gone()));
                        self.input_done = true;
                    } else {
                        self.in_flight += 1;
                    }
                    self.next_read += 1;
                }
                Err(e) => {
                    // Reported in order, after the members read before it.
                    self.ready.insert(seq, Ready::Failed(e));
                    self.next_read += 1;
                    self.input_done = true;
                }
            }
        }
    }

    /// Reads one whole member into `buf`, using its size subfield to find where it ends.
    fn read_member(&mut self, buf: &mut Vec<u8>) -> io::Result<NextMember> {
        let source = self.source.as_mut().expect("source present until the tail");
        let mut head = [0u8; 12];
        let mut filled = 0;
        while filled < head.len() {
            match source.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(NextMember::End);
        }
        if head[..filled.min(3)] != [0x1f, 0x8b, 8][..filled.min(3)] {
            return Err(invalid("invalid gzip header"));
        }
        if filled < head.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "gzip stream truncated inside a member header",
            ));
        }
        if head[3] & FEXTRA == 0 {
            return Ok(NextMember::Foreign(head.to_vec()));
        }
        let xlen = usize::from(u16::from_le_bytes([head[10], head[11]]));
        buf.clear();
        buf.extend_from_slice(&head);
        buf.resize(12 + xlen, 0);
        source.read_exact(&mut buf[12..])?;
        let Some(size) = find_size_subfield(&buf[12..]) else {
            return Ok(NextMember::Foreign(mem::take(buf)));
        };
        let size = size as usize;
        // Header, an empty deflate block (2 bytes) and the trailer at least.
        if size < buf.len() + 2 + 8 || size > MAX_COMPRESSED_MEMBER_BYTES {
            return Err(invalid(&format!(
                "gzip member size subfield of {size} bytes is implausible"
            )));
        }
        let rest = (size - buf.len()) as u64;
        buf.reserve(rest as usize);
        let read = source.take(rest).read_to_end(buf)?;
        if read as u64 != rest {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "gzip stream truncated inside a member",
            ));
        }
        Ok(NextMember::Member)
    }
}

impl<R: Read> Read for ParallelGzDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(invalid("gzip stream already failed"));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.position < self.current.len() {
                let n = buf.len().min(self.current.len() - self.position);
                buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
                self.position += n;
                return Ok(n);
            }
            if let Some(tail) = self.tail.as_mut() {
                return tail.read(buf);
            }
            self.fill();
            match self.ready.remove(&self.next_out) {
                Some(Ready::Failed(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                Some(Ready::Inflated(done)) => {
                    self.next_out += 1;
                    self.spare_inputs.push(done.input);
                    let old = mem::replace(&mut self.current, done.output);
                    self.spare_outputs.push(old);
                    self.position = 0;
                    if let Err(e) = done.result {
                        self.current.clear();
                        self.failed = true;
                        return Err(e);
                    }
                }
                None if self.in_flight > 0 => {
                    let Ok(done) = self.done.recv() else {
                        self.failed = true;
                        return Err(workers_gone());
                    };
                    self.in_flight -= 1;
                    self.ready.insert(done.seq, Ready::Inflated(done));
                }
                None => match (self.foreign_head.take(), self.source.take()) {
                    (Some(head), Some(source)) => {
                        let rest = io::Cursor::new(head).chain(source);
                        self.tail = Some(flate2::read::MultiGzDecoder::new(rest));
                    }
                    _ => return Ok(0),
                },
            }
        }
    }
}

impl<R: Read> Drop for ParallelGzDecoder<R> {
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Inflates one complete gzip member (header, deflate data, trailer, nothing else) into `output`.
fn inflate_member(member: &[u8], output: &mut Vec<u8>) -> io::Result<()> {
    let flags = member[3];
    if flags & 0xe0 != 0 {
        return Err(invalid("gzip header has reserved flags set"));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let xlen = member
            .get(10..12)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
            .ok_or_else(|| invalid("gzip header truncated"))?;
        pos += 2 + xlen;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = member
                .get(pos..)
                .and_then(|rest| rest.iter().position(|b| *b == 0))
                .ok_or_else(|| invalid("gzip header truncated"))?;
            pos += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos + 8 > member.len() {
        return Err(invalid("gzip member shorter than its header and trailer"));
    }
    let (body, trailer) = member[pos..].split_at(member.len() - pos - 8);
    let expected_crc = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    let expected_size = u32::from_le_bytes(trailer[4..].try_into().expect("4 bytes"));
    // One byte over the bound is enough to know the member is hostile.
    let limit = MAX_MEMBER_BYTES + 1;
    output.clear();
    output.reserve((expected_size as usize).clamp(64 * 1024, limit));
    let mut inflate = Decompress::new(false);
    loop {
        if output.len() == output.capacity() {
            if output.len() >= limit {
                return Err(invalid(&format!(
                    "gzip member inflates past {MAX_MEMBER_BYTES} bytes (decompression bomb?)"
                )));
            }
            let more = output.capacity().max(64 * 1024).min(limit - output.len());
            output.reserve_exact(more);
        }
        let (before_in, before_out) = (inflate.total_in(), inflate.total_out());
        let consumed = before_in as usize;
        let status = inflate
            .decompress_vec(&body[consumed..], output, FlushDecompress::None)
            .map_err(|e| invalid(&format!("corrupt deflate stream: {e}")))?;
        if status == Status::StreamEnd {
            break;
        }
        if inflate.total_in() == before_in && inflate.total_out() == before_out {
            return Err(invalid("gzip member ends inside its deflate stream"));
        }
    }
    if output.len() > MAX_MEMBER_BYTES {
        return Err(invalid(&format!(
            "gzip member inflates past {MAX_MEMBER_BYTES} bytes (decompression bomb?)"
        )));
    }
    if inflate.total_in() as usize != body.len() {
        return Err(invalid(
            "gzip member size subfield does not match its deflate stream",
        ));
    }
    let mut crc = Crc::new();
    crc.update(output);
    if crc.sum() != expected_crc || output.len() as u32 != expected_size {
        return Err(invalid("gzip member does not match its CRC-32 or length"));
    }
    Ok(())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
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
        flate2::read::MultiGzDecoder::new(data)
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
        assert_eq!(
            &out[..16],
            &[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, b'A', b'K', 4, 0]
        );
        assert_eq!(&out[16..20], &(out.len() as u32).to_le_bytes());
    }

    fn parallel_gunzip(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ParallelGzDecoder::new(data)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Splits our output into members by their size subfields.
    fn members(data: &[u8]) -> Vec<&[u8]> {
        let mut rest = data;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let size = member_size_subfield(rest).expect("size subfield") as usize;
            out.push(&rest[..size]);
            rest = &rest[size..];
        }
        out
    }

    #[test]
    fn members_are_independent_fixed_size_chunks_that_know_their_size() {
        let data = sample(3 * (1 << 20) + 5);
        let out = gzip(&data, GzOptions::default(), 100_000);
        let pieces = members(&out);
        assert_eq!(pieces.len(), 4);
        for (i, member) in pieces.iter().enumerate() {
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(*member)
                .read_to_end(&mut inflated)
                .unwrap();
            let start = i << 20;
            assert_eq!(inflated, data[start..(start + (1 << 20)).min(data.len())]);
        }
        // No input still makes a valid (one empty member) gzip file.
        let empty = gzip(b"", GzOptions::default(), 1);
        assert_eq!(members(&empty).len(), 1);
        assert_eq!(gunzip(&empty), b"");
        assert_eq!(parallel_gunzip(&empty).unwrap(), b"");
    }

    #[test]
    fn the_parallel_decoder_round_trips_and_reads_a_foreign_tail() {
        let options = GzOptions {
            block_size: 64 * 1024,
            ..GzOptions::default()
        };
        for len in [0, 1, 65_536, 65_537, 1_000_000] {
            let data = sample(len);
            assert_eq!(
                parallel_gunzip(&gzip(&data, options, 10_000)).unwrap(),
                data
            );
        }
        let data = sample(500_000);
        let mut stream = gzip(&data[..300_000], options, 4096);
        let mut foreign = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        foreign.write_all(&data[300_000..]).unwrap();
        stream.extend(foreign.finish().unwrap());
        assert_eq!(parallel_gunzip(&stream).unwrap(), data);
    }

    #[test]
    fn the_parallel_decoder_refuses_lying_sizes_corruption_truncation_and_bombs() {
        let data = sample(300_000);
        let options = GzOptions {
            block_size: 64 * 1024,
            ..GzOptions::default()
        };
        let good = gzip(&data, options, 65_536);
        let first = member_size_subfield(&good).unwrap() as usize;
        for delta in [-1i64, 1, -100, 5000] {
            let mut bad = good.clone();
            let lie = (first as i64 + delta) as u32;
            bad[16..20].copy_from_slice(&lie.to_le_bytes());
            assert!(parallel_gunzip(&bad).is_err(), "size off by {delta}");
        }
        let mut bad = good.clone();
        bad[first - 6] ^= 1; // CRC of the first member
        assert!(parallel_gunzip(&bad).is_err());
        let mut bad = good.clone();
        bad[first - 2] ^= 1; // ISIZE of the first member
        assert!(parallel_gunzip(&bad).is_err());
        assert!(parallel_gunzip(&good[..good.len() - 3]).is_err());
        assert!(parallel_gunzip(&good[..first + 5]).is_err());
        // Once a member failed, later members are not served past the hole.
        let mut bad = good.clone();
        bad[first - 6] ^= 1;
        let mut decoder = ParallelGzDecoder::new(&bad[..]).unwrap();
        assert!(decoder.read_to_end(&mut Vec::new()).is_err());
        assert!(decoder.read(&mut [0u8; 16]).is_err());
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"trailing");
        assert!(parallel_gunzip(&garbage).is_err());

        // A well-formed member that inflates to one byte over the per-member bound.
        let zeros = vec![0u8; MAX_MEMBER_BYTES + 1];
        let mut bomb = Vec::new();
        gzip_member(9, &zeros, &mut bomb).unwrap();
        assert!(bomb.len() < 64 * 1024);
        let err = parallel_gunzip(&bomb).unwrap_err();
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        let mut exact = Vec::new();
        gzip_member(9, &zeros[1..], &mut exact).unwrap();
        assert_eq!(parallel_gunzip(&exact).unwrap().len(), MAX_MEMBER_BYTES);
    }

    #[test]
    fn chunks_over_the_member_bound_are_refused() {
        let options = GzOptions {
            block_size: MAX_MEMBER_BYTES + 1,
            ..GzOptions::default()
        };
        assert!(ParallelGzEncoder::with_options(Vec::new(), options).is_err());
    }
}
