//! Writes a new cosign key pair: `cargo run -p aoc-sigstore --example keygen -- OUT_PREFIX PASSWORD`
//! creates OUT_PREFIX.key (encrypted, cosign format) and OUT_PREFIX.pub (SPKI PEM).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [prefix, password] = args.as_slice() else {
        eprintln!("usage: keygen OUT_PREFIX PASSWORD  (writes OUT_PREFIX.key and OUT_PREFIX.pub)");
        return ExitCode::from(2);
    };
    let (private_pem, public_pem) = match aoc_sigstore::generate_key_pair(password.as_bytes()) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("keygen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (path, text) in [
        (format!("{prefix}.key"), private_pem),
        (format!("{prefix}.pub"), public_pem),
    ] {
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("keygen: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {path}");
    }
    ExitCode::SUCCESS
}
