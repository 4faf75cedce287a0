"""Backends behind one small interface (`base.Provider`): Voltage (and its emulator), LNbits."""
