//! Response status codes (`PROTOCOL.md`, "Status codes"). A registry: values are never reused.

/// The outcome of one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u16)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    LsnTooOld = 2,
    LsnTimeout = 3,
    SlowDown = 4,
    Unauthorized = 5,
    KeyUnavailable = 6,
    BadRequest = 7,
    Fenced = 8,
    Internal = 9,
    Corrupt = 10,
    ProtocolError = 11,
    UnknownTimeline = 12,
    LsnOutOfOrder = 13,
}

impl Status {
    pub const ALL: [Status; 14] = [
        Status::Ok,
        Status::NotFound,
        Status::LsnTooOld,
        Status::LsnTimeout,
        Status::SlowDown,
        Status::Unauthorized,
        Status::KeyUnavailable,
        Status::BadRequest,
        Status::Fenced,
        Status::Internal,
        Status::Corrupt,
        Status::ProtocolError,
        Status::UnknownTimeline,
        Status::LsnOutOfOrder,
    ];

    pub fn from_u16(value: u16) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| *s as u16 == value)
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "Ok",
            Status::NotFound => "NotFound",
            Status::LsnTooOld => "LsnTooOld",
            Status::LsnTimeout => "LsnTimeout",
            Status::SlowDown => "SlowDown",
            Status::Unauthorized => "Unauthorized",
            Status::KeyUnavailable => "KeyUnavailable",
            Status::BadRequest => "BadRequest",
            Status::Fenced => "Fenced",
            Status::Internal => "Internal",
            Status::Corrupt => "Corrupt",
            Status::ProtocolError => "ProtocolError",
            Status::UnknownTimeline => "UnknownTimeline",
            Status::LsnOutOfOrder => "LsnOutOfOrder",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
