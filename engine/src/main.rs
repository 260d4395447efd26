//! The `oci-conform` binary.

fn main() {
    std::process::exit(oci_conform::cli::main());
}
