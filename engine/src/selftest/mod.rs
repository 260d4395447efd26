//! The self-test: proof that the suite catches what it claims to and leaves conformant
//! registries alone, as data.
//!
//! - [`alteration`]: the YAML model of alterations (violations and variants): match + edit,
//!   plain HTTP;
//! - [`wire`]: HTTP/1.1 framing on the proxy's client side;
//! - [`proxy`]: a real registry served through alterations (`oci-conform proxy`);
//! - [`driver`]: `oci-conform selftest` — a baseline run, then a run of the pack through the
//!   proxy per alteration, compared with the baseline.

pub mod alteration;
pub mod driver;
pub mod proxy;
pub mod wire;
