//! AWS Signature Version 4 verification (placeholder: filled in below).
