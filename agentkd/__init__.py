"""agentkd: distil tool-using LLM agents into small students.

Record teacher trajectories, distil them into principles and training traces, train small
students, and replay them with self-consistent action generation. Submodules are imported on
demand so that importing the package stays instant.
"""

__version__ = "0.1.0"
