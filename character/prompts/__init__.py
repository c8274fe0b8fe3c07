"""The prompt bank: what teachers, students and the DPO model are asked, and the system prompts."""
