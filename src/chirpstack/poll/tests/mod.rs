mod cycle;
mod double;
mod pagination;
