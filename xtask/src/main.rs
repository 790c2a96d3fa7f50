//! `cargo xtask <command>`: the project's tasks. Each subcommand is its own module.
//!
//! - `bench`  : the seed's benchmark (Mamba2Block and the kernels on every backend).
//! - `golden` : the conformance runner over `*.safetensors` golden cases.
//! - `cuda`   : install the pinned CUDA 13.0 compiler and build the CUDA plugin.
//! - `test`   : what CI runs (README's test command).

mod bench;
mod cuda;
mod golden;
mod test;

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: cargo xtask <bench|golden|cuda|test> [options]\n\
     \n\
     bench  [--quick] [--backend NAME]... [--no-reference] [--dtype T] [--out DIR] [--only SUBSTR]\n\
     \x20      run the benchmark; writes bench.json, bench.md, bench.svg (default DIR target/bench)\n\
     golden [--backend reference|cpu-simd|cuda] [--dir DIR] [--dtype f32|bf16|f16] [--forward-only]\n\
     cuda   build                              install nvcc 13.0 (PyPI) and build the plugin\n\
     test   [--no-cuda] [-- ARGS]              build the plugin, then cargo test --workspace"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let result = match cmd.as_str() {
        "-h" | "--help" | "help" => {
            println!("{}", usage());
            Ok(())
        }
        "golden" => golden::run(rest),
        "bench" => bench::run(rest),
        "cuda" => cuda::run(rest),
        "test" => test::run(rest),
        other => Err(format!("unknown command `{other}`\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
