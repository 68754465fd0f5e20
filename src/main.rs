use std::process::ExitCode;

fn main() -> ExitCode {
    piflow::cli::main()
}
