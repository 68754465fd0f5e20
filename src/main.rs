use std::process::ExitCode;

/// mimalloc: the interpreter allocates many small JSON values per state
/// transition; measured +30–60% transitions/s over glibc malloc
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    piflow::cli::main()
}
