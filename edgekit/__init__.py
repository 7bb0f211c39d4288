"""edgekit: trained neural networks to bit-exact, specialised C for microcontrollers and FPGAs."""

__version__ = "0.1.0"
