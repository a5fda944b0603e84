"""Generative and unsupervised image models: (denoising) autoencoder, VAE and DCGAN (tasks
`autoencoder`, `vae`, `gan`): config, data, training, evaluation and loading."""
