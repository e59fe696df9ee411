package redisstore

import "strings"

// ClusterSlots is the number of hash slots of Redis Cluster.
const ClusterSlots = 16384

// KeySlot is the Redis Cluster hash slot of key, as CLUSTER KEYSLOT
// computes it: CRC16 (XMODEM) of the key's hash tag, the text between its
// first '{' and the next '}' when that is not empty, else of the whole
// key, modulo 16384. go-redis keeps its own unexported.
func KeySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return int(crc16(key)) % ClusterSlots
}

// crc16 is CRC-16/XMODEM: polynomial 0x1021, initial value 0, no
// reflection, bit by bit (keys are short).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
