//! Operations decoded from a fuzzer's bytes.

use super::{Cond, Op, TxOp};

/// Decodes arbitrary bytes (a fuzzer's input) into operations: every input is a valid
/// sequence, so the fuzzer explores operation orders rather than parse errors.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut c = Cursor(data);
    let mut ops = Vec::new();
    while !c.0.is_empty() && ops.len() < 64 {
        ops.push(c.op());
    }
    ops
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), 0, 0])
    }
    fn tx_op(&mut self) -> TxOp {
        match self.u8() % 4 {
            0 => TxOp::Put { b: self.u8(), k: self.u8(), len: self.u32(), seed: self.u8() },
            1 => TxOp::Delete { b: self.u8(), k: self.u8() },
            2 => TxOp::Copy { sb: self.u8(), sk: self.u8(), db: self.u8(), dk: self.u8() },
            _ => TxOp::Get { b: self.u8(), k: self.u8() },
        }
    }
    fn op(&mut self) -> Op {
        match self.u8() % 17 {
            0..=2 => {
                let (b, k, len, seed, flags) = (self.u8(), self.u8(), self.u32(), self.u8(), self.u8());
                let cond = [Cond::None, Cond::None, Cond::IfAbsent, Cond::IfMatchCurrent, Cond::IfMatchWrong]
                    [usize::from(flags >> 1) % 5];
                Op::Put { b, k, len, seed, stream: flags & 1 == 1, cond }
            }
            3 => Op::Delete { b: self.u8(), k: self.u8() },
            4 => Op::Copy { sb: self.u8(), sk: self.u8(), db: self.u8(), dk: self.u8() },
            5 => {
                let (b, k, r) = (self.u8(), self.u8(), self.u8());
                Op::Get { b, k, range: (r & 1 == 1).then(|| (self.u32(), self.u32())) }
            }
            6 => Op::List { b: self.u8(), prefix: self.u8(), delim: self.u8() & 1 == 1, page: self.u8() },
            7 | 8 => {
                let n = self.u8() % 6;
                let ops = (0..n).map(|_| self.tx_op()).collect();
                Op::Txn { ops, commit: !self.u8().is_multiple_of(4) }
            }
            9 => {
                let (b, k, n) = (self.u8(), self.u8(), self.u8() % 4);
                let parts = (0..n).map(|_| (self.u32(), self.u8())).collect();
                Op::Multipart { b, k, parts, complete: !self.u8().is_multiple_of(3) }
            }
            10 => Op::CreateBucket { b: self.u8() },
            11 => Op::DeleteBucket { b: self.u8(), only_empty: self.u8() & 1 == 1 },
            12 => Op::TakeSnapshot,
            13 => Op::CheckSnapshot,
            14 => Op::Reopen,
            15 => Op::Gc,
            _ => Op::Compact,
        }
    }
}
