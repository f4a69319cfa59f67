"""The embedded StreamIoT emulator."""
