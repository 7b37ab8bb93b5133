//! `aoc_archive::fs::open_regular`, the one opener of untrusted files: a FIFO, a device, a link
//! or a directory is refused promptly (a FIFO without a writer would block a plain `open`
//! forever), with a message naming what it is; a regular file is opened within its bounds.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use aoc_archive::fs::{open_regular, read_bounded, Expect, OpenError};

/// `open_regular(path)` on another thread; a test fails instead of hanging when it blocks.
fn open_promptly(path: &Path, expect: Expect) -> Result<u64, OpenError> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(open_regular(&path, expect).map(|(_, size)| size));
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("open_regular blocked for 5 s")
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("aoc-dataset-x.manifest.json");
    mkfifo(&fifo);
    let err = open_promptly(&fifo, Expect::at_most(1 << 20)).unwrap_err();
    assert!(matches!(err, OpenError::NotRegular("a FIFO")), "{err:?}");
    assert_eq!(
        err.to_string(),
        "is a FIFO, not a regular file (refused unread)"
    );
    // read_bounded goes through the same opener, and names the path.
    let (tx, rx) = mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(read_bounded(&path, 1 << 20).map(|b| b.len()));
    });
    let err = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("read_bounded blocked on a FIFO")
        .unwrap_err();
    assert!(err.to_string().contains("is a FIFO"), "{err}");
    assert!(
        err.to_string().contains("aoc-dataset-x.manifest.json"),
        "{err}"
    );
}

#[test]
fn links_devices_and_directories_are_refused_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::write(&real, b"kit bytes").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let to_fifo = dir.path().join("to-fifo");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
    let cases: [(&Path, &str); 5] = [
        (&link, "a symbolic link"),
        (&dangling, "a symbolic link"),
        (&to_fifo, "a symbolic link"),
        (Path::new("/dev/null"), "a device"),
        (dir.path(), "a directory"),
    ];
    for (path, kind) in cases {
        match open_promptly(path, Expect::at_most(1 << 20)) {
            Err(OpenError::NotRegular(k)) => assert_eq!(k, kind, "{}", path.display()),
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    assert!(matches!(
        open_promptly(&dir.path().join("absent"), Expect::at_most(1)),
        Err(OpenError::Missing)
    ));
}

#[test]
fn a_regular_file_opens_within_its_cap_and_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SHA256SUMS");
    std::fs::write(&path, b"0123456789").unwrap();
    assert_eq!(open_promptly(&path, Expect::at_most(10)).unwrap(), 10);
    assert!(matches!(
        open_promptly(&path, Expect::at_most(9)),
        Err(OpenError::TooLarge { size: 10, cap: 9 })
    ));
    let exact = Expect {
        cap: 100,
        size: Some(10),
    };
    assert_eq!(open_promptly(&path, exact).unwrap(), 10);
    let other = Expect {
        cap: 100,
        size: Some(11),
    };
    match open_promptly(&path, other) {
        Err(e @ OpenError::WrongSize { .. }) => {
            assert_eq!(e.to_string(), "is 10 bytes, 11 were expected")
        }
        other => panic!("{other:?}"),
    }
}

/// The race `stella kit verify` lost before (a type check, then a blocking `open`): a FIFO
/// renamed over the file between the two hung the reader. With the file and a FIFO swapped 500
/// times, every open returns at once, with the file's bytes or a refusal.
#[test]
fn a_fifo_swapped_in_while_opening_never_blocks() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("aoc-backfill-runner.tar.gz");
    let (file, fifo) = (dir.path().join("file"), dir.path().join("fifo"));
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (target, file, fifo) = (target.clone(), file.clone(), fifo.clone());
        let (stop, swaps) = (stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                swaps.fetch_add(1, Ordering::Relaxed);
                // The FIFO follows the file within microseconds: an opener that examined the
                // file opens the FIFO.
                let _ = std::fs::remove_file(&fifo);
                mkfifo_quiet(&fifo);
                std::fs::write(&file, b"runner").unwrap();
                std::fs::rename(&file, &target).unwrap();
                std::fs::rename(&fifo, &target).unwrap();
            }
        })
    };
    let (tx, rx) = mpsc::channel();
    let opener = {
        let (target, swaps) = (target.clone(), swaps.clone());
        std::thread::spawn(move || {
            let mut outcomes = (0, 0);
            // Until the FIFO was swapped in 500 times (the hang was seen after ~300).
            while swaps.load(Ordering::Relaxed) < 500 {
                let started = std::time::Instant::now();
                let opened = open_regular(&target, Expect::at_most(1 << 20));
                // A blocking open was seen to hang here for 53 s.
                let took = started.elapsed();
                assert!(took < Duration::from_secs(2), "one open took {took:?}");
                match opened {
                    Ok((_, 6)) => outcomes.0 += 1,
                    Ok((_, n)) => panic!("opened {n} bytes"),
                    Err(OpenError::NotRegular(_) | OpenError::Missing) => outcomes.1 += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
            let _ = tx.send(outcomes);
        })
    };
    let outcomes = rx.recv_timeout(Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let (opened, refused) = outcomes.expect("an open blocked on a FIFO swapped in");
    opener.join().unwrap();
    assert!(
        opened > 0 && refused > 0,
        "{opened} opened, {refused} refused"
    );
}

/// `mkfifo(1)` as a library call would be unsafe code; a child process is a few ms.
fn mkfifo_quiet(path: &Path) {
    let _ = std::process::Command::new("mkfifo").arg(path).status();
}
