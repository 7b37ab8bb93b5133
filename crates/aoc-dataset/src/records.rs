//! Streaming a data member as batches of lines, hashing and counting its bytes on the way, so that
//! verification and reading touch each byte once and hold at most two batches (~8 MiB each) in
//! memory: the one being checked and the one being read.

use aoc_digest::Sha256Digest;
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// Complete lines handed out per batch (a batch grows past this only for a longer single line).
const BATCH_BYTES: usize = 8 << 20;
/// Lines handed out per batch at most (real batches hold a few thousand): a member of tiny lines
/// cannot make one batch's line table (or the results checked from it) large: lines past the
/// bound stay buffered, unsplit, for the next batch.
const BATCH_LINES: usize = 1 << 16;
/// Bytes requested per read.
const READ_BYTES: usize = 1 << 20;

/// A batch buffer's capacity: reads go on while the complete lines are under `batch_bytes`, so
/// the last read starts below `batch_bytes` plus an unfinished line and adds `READ_BYTES`. With
/// lines of a few KB a buffer never grows, so the buffers passed around are allocated (and
/// their pages faulted in) once per member, not again as they grow.
fn buffer_bytes(batch_bytes: usize) -> usize {
    batch_bytes + 2 * READ_BYTES
}
/// The longest line accepted: real raw documents are a few KB (the largest CSAF example ~130 KB);
/// a "line" without a newline for longer than this is refused instead of buffered, so a data
/// member of zeros (a decompression bomb) cannot make a reader hold gigabytes.
pub(crate) const MAX_LINE_BYTES: usize = 64 << 20;

/// One line of a batch: `data[start..end]`, without its newline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    /// 1-based line number in the member.
    pub no: u64,
    pub start: usize,
    pub end: usize,
    /// False only for a last line that does not end with `\n`.
    pub terminated: bool,
}

#[derive(Default)]
pub(crate) struct LineBatch {
    /// The lines' bytes; past the last line's end the buffer holds stale bytes, never read.
    pub data: Vec<u8>,
    pub lines: Vec<Line>,
    /// Bytes of the stream before `data[0]`.
    pub base: u64,
}

impl LineBatch {
    pub fn bytes(&self, line: &Line) -> &[u8] {
        &self.data[line.start..line.end]
    }
}

/// What streaming a member saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Streamed {
    pub bytes: u64,
    pub sha256: Sha256Digest,
    pub lines: u64,
}

/// Checks consecutive batches of lines of `reader` with `check` on the thread pool while this
/// thread reads the next batch and hands the previous batch's result to `book`, in order; then
/// returns the stream's size and SHA-256. Reading (inflating, hashing, splitting) overlaps the
/// checks instead of preceding them, and `book` sees results in batch order.
pub(crate) fn stream_lines<R, T, E, C, B>(
    mut reader: R,
    check: C,
    mut book: B,
) -> Result<Streamed, E>
where
    R: Read,
    T: Send,
    E: From<io::Error>,
    C: Fn(&LineBatch) -> T + Sync,
    B: FnMut(T) -> Result<(), E>,
{
    let mut lines = Lines::new(BATCH_BYTES, true);
    let mut current = lines.next_owned(&mut reader, LineBatch::default())?;
    let mut spare = LineBatch::default();
    let mut pending: Option<T> = None;
    while let Some(batch) = current.take() {
        let mut checked = None;
        let mut booked = Ok(());
        let next = rayon::in_place_scope(|scope| {
            scope.spawn(|_| checked = Some(check(&batch)));
            if let Some(result) = pending.take() {
                booked = book(result);
            }
            lines.next_owned(&mut reader, std::mem::take(&mut spare))
        });
        booked?;
        pending = checked;
        spare = batch;
        current = next?;
    }
    if let Some(result) = pending {
        book(result)?;
    }
    Ok(lines.streamed())
}

/// Splits what a reader returns into batches of complete lines, pulled one batch at a time: the
/// batch handed out last is dropped when the next one is asked for.
pub(crate) struct Lines {
    batch: LineBatch,
    /// Complete lines handed out per batch (a batch grows past this only for a longer line).
    batch_bytes: usize,
    /// Start of the line not yet complete, in `batch.data`.
    line_start: usize,
    /// Bytes of `batch.data` read so far (the rest of it is stale).
    filled: usize,
    /// Bytes of `batch.data` searched for line ends (`line_start <= scanned <= filled`).
    scanned: usize,
    line_no: u64,
    total: u64,
    hasher: Option<Sha256>,
    /// Lines of the last batch are still in `batch` (to drop before reading on).
    handed_out: bool,
    eof: bool,
}

impl Lines {
    /// `hash`: compute the SHA-256 of everything read, for [`streamed`](Self::streamed).
    pub fn new(batch_bytes: usize, hash: bool) -> Lines {
        Lines {
            batch: LineBatch {
                data: Vec::with_capacity(buffer_bytes(batch_bytes)),
                lines: Vec::new(),
                base: 0,
            },
            batch_bytes,
            line_start: 0,
            filled: 0,
            scanned: 0,
            line_no: 0,
            total: 0,
            hasher: hash.then(Sha256::new),
            handed_out: false,
            eof: false,
        }
    }

    /// Starts counting at byte `offset` of the stream, as line `line_no + 1`: for a reader
    /// already positioned there. Only before the first batch.
    pub fn start_at(&mut self, offset: u64, line_no: u64) {
        debug_assert!(self.total == 0 && self.hasher.is_none());
        self.batch.base = offset;
        self.total = offset;
        self.line_no = line_no;
    }

    /// The next batch of complete lines (the last line may be unterminated), `None` at the end.
    pub fn next_batch<R: Read>(&mut self, reader: &mut R) -> io::Result<Option<&LineBatch>> {
        if self.handed_out {
            self.handed_out = false;
            self.batch.lines.clear();
            self.batch.data.copy_within(self.line_start..self.filled, 0);
            self.filled -= self.line_start;
            self.scanned -= self.line_start;
            self.batch.base += self.line_start as u64;
            self.line_start = 0;
        }
        loop {
            // Split what is buffered, up to the batch's bounds: a read of tiny lines stays
            // buffered, unsplit, for the next batch.
            while self.batch.lines.len() < BATCH_LINES && self.line_start < self.batch_bytes {
                let Some(i) = memchr::memchr(b'\n', &self.batch.data[self.scanned..self.filled])
                else {
                    self.scanned = self.filled;
                    break;
                };
                let end = self.scanned + i;
                self.line_no += 1;
                self.batch.lines.push(Line {
                    no: self.line_no,
                    start: self.line_start,
                    end,
                    terminated: true,
                });
                self.line_start = end + 1;
                self.scanned = end + 1;
            }
            if self.filled - self.line_start > MAX_LINE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {} is longer than {} MiB: not a raw document",
                        self.line_no + 1,
                        MAX_LINE_BYTES >> 20
                    ),
                ));
            }
            let full = self.batch.lines.len() >= BATCH_LINES || self.line_start >= self.batch_bytes;
            if full || self.eof {
                break;
            }
            let data = &mut self.batch.data;
            let old_len = self.filled;
            // The buffer only grows (zeroed once): bytes past `filled` are stale, never read.
            if data.len() < old_len + READ_BYTES {
                data.resize(old_len + READ_BYTES, 0);
            }
            let n = loop {
                match reader.read(&mut data[old_len..old_len + READ_BYTES]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
                continue;
            }
            self.filled = old_len + n;
            if let Some(h) = &mut self.hasher {
                h.update(&data[old_len..self.filled]);
            }
            self.total += n as u64;
        }
        // The unterminated last line, once everything before it has been handed out.
        if self.eof
            && self.scanned == self.filled
            && self.line_start < self.filled
            && self.batch.lines.len() < BATCH_LINES
        {
            self.line_no += 1;
            self.batch.lines.push(Line {
                no: self.line_no,
                start: self.line_start,
                end: self.filled,
                terminated: false,
            });
            self.line_start = self.filled;
            self.scanned = self.filled;
        }
        if self.batch.lines.is_empty() {
            return Ok(None);
        }
        self.handed_out = true;
        Ok(Some(&self.batch))
    }

    /// [`next_batch`](Self::next_batch), handed out as an owned batch (its unfinished last line
    /// moves into `spare`, which becomes the buffer read into next): the caller checks it while
    /// the next one is read.
    pub fn next_owned<R: Read>(
        &mut self,
        reader: &mut R,
        mut spare: LineBatch,
    ) -> io::Result<Option<LineBatch>> {
        if self.next_batch(reader)?.is_none() {
            return Ok(None);
        }
        // The unfinished line moves to the front of `spare`, which is read into next; buffers
        // keep their (zeroed) length, so a recycled one is not zeroed again.
        let tail = self.line_start..self.filled;
        spare.lines.clear();
        let capacity = buffer_bytes(self.batch_bytes);
        spare
            .data
            .reserve(capacity.saturating_sub(spare.data.len()));
        if spare.data.len() < tail.len() {
            spare.data.resize(tail.len(), 0);
        }
        spare.data[..tail.len()].copy_from_slice(&self.batch.data[tail.clone()]);
        spare.base = self.batch.base + self.line_start as u64;
        let out = std::mem::replace(&mut self.batch, spare);
        self.filled = tail.len();
        self.scanned -= self.line_start;
        self.line_start = 0;
        self.handed_out = false;
        Ok(Some(out))
    }

    /// Size, SHA-256 (when hashing) and line count of everything read.
    pub fn streamed(&self) -> Streamed {
        Streamed {
            bytes: self.total,
            sha256: self
                .hasher
                .clone()
                .map(|h| Sha256Digest(h.finalize().into()))
                .unwrap_or_default(),
            lines: self.line_no,
        }
    }
}

/// What [`stream_lines`] returns, without handing out lines: for checks that need the bytes'
/// hash and the line count but not the records, so nothing is buffered past one read.
pub(crate) fn stream_count<R: Read>(reader: R) -> io::Result<Streamed> {
    let mut reader = aoc_digest::HashingReader::new(reader);
    let mut buf = vec![0u8; READ_BYTES];
    let (mut newlines, mut last) = (0u64, b'\n');
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        newlines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        last = chunk[n - 1];
    }
    let (bytes, sha256) = reader.finish();
    Ok(Streamed {
        bytes,
        sha256,
        // An unterminated last line is a line too, as stream_lines counts it.
        lines: newlines + u64::from(last != b'\n'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_agrees_with_streaming() {
        for data in [
            &b""[..],
            b"a\n",
            b"a\nb",
            b"\n\n",
            b"{\"x\":1}\n{\"y\":2}\n",
        ] {
            let streamed =
                stream_lines::<_, _, io::Error, _, _>(data, |_| (), |()| Ok(())).unwrap();
            assert_eq!(stream_count(data).unwrap(), streamed, "{data:?}");
        }
        let big: Vec<u8> = (0..3 * READ_BYTES)
            .map(|i| if i % 977 == 0 { b'\n' } else { b'x' })
            .collect();
        let streamed =
            stream_lines::<_, _, io::Error, _, _>(&big[..], |_| (), |()| Ok(())).unwrap();
        assert_eq!(stream_count(&big[..]).unwrap(), streamed);
    }

    #[test]
    fn a_line_longer_than_the_bound_is_refused_without_buffering_it() {
        let zeros = std::io::repeat(0).take((MAX_LINE_BYTES + 2 * READ_BYTES) as u64);
        let err = stream_lines::<_, _, io::Error, _, _>(zeros, |_| (), |()| Ok(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("line 1 is longer than 64 MiB"),
            "{err}"
        );
    }

    fn collect(input: &[u8]) -> (Vec<(u64, Vec<u8>, bool)>, Streamed) {
        let mut out = Vec::new();
        let s = stream_lines::<_, _, io::Error, _, _>(
            input,
            |b| {
                b.lines
                    .iter()
                    .map(|l| (l.no, b.bytes(l).to_vec(), l.terminated))
                    .collect::<Vec<_>>()
            },
            |lines| {
                out.extend(lines);
                Ok(())
            },
        )
        .unwrap();
        (out, s)
    }

    #[test]
    fn lines_are_numbered_and_an_unterminated_tail_is_flagged() {
        let (lines, s) = collect(b"a\n\nbc\nd");
        assert_eq!(
            lines,
            vec![
                (1, b"a".to_vec(), true),
                (2, b"".to_vec(), true),
                (3, b"bc".to_vec(), true),
                (4, b"d".to_vec(), false)
            ]
        );
        assert_eq!(s.bytes, 7);
        assert_eq!(s.lines, 4);
        assert_eq!(s.sha256, Sha256Digest::of(b"a\n\nbc\nd"));
    }

    #[test]
    fn batches_split_only_between_lines() {
        let line = vec![b'x'; 999];
        let mut input = Vec::new();
        for _ in 0..20_000 {
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
        let (lines, s) = collect(&input);
        assert_eq!(lines.len(), 20_000);
        assert!(lines.iter().all(|(_, l, t)| l.len() == 999 && *t));
        assert_eq!(s.bytes, 20_000_000);
    }

    #[test]
    fn tiny_lines_come_in_bounded_batches_in_order() {
        // "0\n" lines, empty lines (the most a read can hold), and an unterminated tail.
        for (line, tail) in [(&b"0\n"[..], &b""[..]), (b"\n", b""), (b"\n", b"x")] {
            let mut input = line.repeat(3 * READ_BYTES);
            input.extend_from_slice(tail);
            let total = (3 * READ_BYTES + tail.len().min(1)) as u64;
            let (mut largest, mut next_no, mut unterminated) = (0, 1, 0);
            let s = stream_lines::<_, _, io::Error, _, _>(
                &input[..],
                |b| {
                    let first = b.lines.first().map(|l| (l.no, l.start));
                    let open = b.lines.iter().filter(|l| !l.terminated).count();
                    (b.lines.len(), first, b.base, open)
                },
                |(n, first, base, open)| {
                    largest = largest.max(n);
                    let (no, start) = first.expect("a batch has lines");
                    assert_eq!(no, next_no);
                    assert_eq!(base + start as u64, (next_no - 1) * line.len() as u64);
                    next_no += n as u64;
                    unterminated += open;
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(s.lines, total);
            assert_eq!(next_no - 1, s.lines);
            assert_eq!(unterminated, tail.len());
            assert!(largest <= BATCH_LINES, "{largest}");
        }
    }
}
