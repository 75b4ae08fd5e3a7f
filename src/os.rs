//! What the operating system's errors mean to the gateway, for the layers
//! that own sockets (SIP transport, the RTP port pool).

use std::io;

/// The process or the system is out of file descriptors (EMFILE, ENFILE):
/// a new socket cannot be had until others close.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE (24), ENFILE (23).
    matches!(e.raw_os_error(), Some(23 | 24))
}
