// Package spool is a durable queue of records on local disk: the spend
// ledger's rows wait in it until PostgreSQL has them.
//
// A spool is a directory of append-only segment files and a cursor:
//
//	LOCK                    flock(2)ed by the process that has the spool open
//	00000000000000000007.seg  segments, oldest first: a magic line, then frames
//	00000000000000000008.seg
//	cursor                  where the oldest record not yet acknowledged starts
//
// Each frame is a 16-byte header — the payload's length and its CRC-32C
// (Castagnoli, over the append time and the payload), and the append
// time in Unix nanoseconds — followed by the payload.
//
// Guarantees:
//   - Append returns once the frame is written to the file with one
//     write(2): from then on it survives the process being killed (the
//     kernel holds it). It reaches the disk itself at the next group
//     commit, an fsync at most SyncInterval later or as soon as
//     SyncRecords appends are waiting, so a crash of the machine loses at
//     most that window.
//   - Records are read in the order they were appended, and a record
//     stays on disk until Ack has moved the cursor past it. The cursor is
//     written without fsync: after a crash some acknowledged records may
//     be read again, never fewer (the consumer must be idempotent; the
//     ledger's rows are keyed by request).
//   - A frame torn by a crash (a short write at the end of the last
//     segment) is cut off when the spool is opened again; a frame whose
//     checksum fails elsewhere (the disk changed it) ends its segment's
//     readable part and is counted in Stats.Corrupt.
//   - One process has a spool open at a time (the LOCK file); a second
//     Open of the same directory fails and says which process holds it.
//
// The spool has no size limit of its own: Stats says how much it holds,
// and the caller decides what to do when that is too much (the ledger
// refuses requests or drops rows, as configured).
package spool
