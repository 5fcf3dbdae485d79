/// mimalloc: snapshots and diffs allocate many small JSON values; it made `pgsnapdiff diff`
/// and the check's diff phase markedly faster than glibc malloc (scripts/bench).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pgsnapdiff::main()
}
