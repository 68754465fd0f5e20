pub mod asl;
