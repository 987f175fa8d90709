"""The simulated board: byte-level chip simulators, simulated cameras, a duct world, faults.

Used by the tests, by the demo and by anyone without hardware. ``hil.board.simulated_board()``
builds a whole board in one line.
"""
