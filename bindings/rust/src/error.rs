// SPDX-License-Identifier: LGPL-2.1-or-later
//! error.rs - what an engine answers when something fails: an errno (what
//! the request's submitter sees: EIO, ENOSPC, ...) and, for setup and
//! open_queue, a message for the person who added the device.

use std::fmt;

/// An errno, with a message where one helps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    errno: i32,
    message: Option<String>,
}

impl Error {
    /// EIO: the request failed.
    pub const IO: Error = Error::from_errno(5);
    /// ENOMEM.
    pub const NO_MEMORY: Error = Error::from_errno(12);
    /// EINVAL: a bad argument (an option, a range outside the device).
    pub const INVALID: Error = Error::from_errno(22);
    /// ENOSPC: no space left to store the write.
    pub const NO_SPACE: Error = Error::from_errno(28);
    /// EROFS.
    pub const READ_ONLY: Error = Error::from_errno(30);
    /// EOPNOTSUPP: the engine does not do this op.
    pub const NOT_SUPPORTED: Error = Error::from_errno(95);

    /// An errno (a positive number, as in errno.h).
    pub const fn from_errno(errno: i32) -> Error {
        Error { errno, message: None }
    }

    /// An errno with a message (shown by `azbusectl add` when setup fails).
    pub fn with_message(errno: i32, message: impl Into<String>) -> Error {
        Error { errno, message: Some(message.into()) }
    }

    /// The same error, with a message.
    pub fn context(self, message: impl Into<String>) -> Error {
        Error { errno: self.errno, message: Some(message.into()) }
    }

    /// The errno (positive).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The message, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// What C wants: -errno, never 0 (an errno of 0 or less becomes -EIO).
    pub(crate) fn to_c(&self) -> i32 {
        if self.errno > 0 {
            -self.errno
        } else {
            -5
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error { errno: e.raw_os_error().unwrap_or(5), message: Some(e.to_string()) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::io::Error::from_raw_os_error(self.errno);
        match &self.message {
            Some(m) => write!(f, "{} ({})", m, text),
            None => write!(f, "{}", text),
        }
    }
}

impl std::error::Error for Error {}
