package buildinfo

// Version is set with -ldflags "-X hoard.dev/hoard/internal/buildinfo.Version=...".
var Version = "dev"
