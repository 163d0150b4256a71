//! RLS overhead benchmark (filled in below the milestone).
fn main() {
    eprintln!("rls_overhead: not implemented yet");
}
