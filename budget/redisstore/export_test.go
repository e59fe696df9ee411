package redisstore

// The scripts, for tests that call them with arguments Store never sends.
var (
	ReserveScript = reserveScript
	SettleScript  = settleScript
	UsageScript   = usageScript
	ExtendScript  = extendScript
)
